// SPDX-License-Identifier: GPL-2.0
/*
 * Backing-file writes for FCMs that do not depend on whoever happens to
 * call. An FCM writes a page back in the context of the call that needed
 * it written (an fsync, an eviction in a reader's miss, a close):
 *
 *  - with that call's RLIMIT_FSIZE, a reader with a low limit would get
 *    SIGXFSZ (by default a fatal signal) and make the write-back of
 *    someone else's page fail; and a caller with a fatal signal pending
 *    would have its buffered write cut short (EINTR). The kernel's own
 *    write-back runs in flusher threads, which have neither; so does this
 *    one, on a workqueue, whenever the caller has a finite limit or is
 *    dying;
 *  - with that call's credentials, permission hooks and file_remove_privs
 *    (which keeps S_ISUID for a writer with CAP_FSETID) would judge the
 *    wrong task, a kworker included. The write runs with the credentials
 *    the FCM's file was opened with (the attacher's), as overlayfs runs
 *    its lower writes with the mounter's.
 *
 * Exported for the FCM modules (fcm_pages.rs).
 */
#include <linux/cred.h>
#include <linux/export.h>
#include <linux/fs.h>
#include <linux/resource.h>
#include <linux/sched/signal.h>
#include <linux/workqueue.h>

struct hotswap_unlimited_write {
	struct work_struct work;
	struct file *file;
	const void *buf;
	size_t len;
	loff_t *pos;
	ssize_t ret;
};

static void hotswap_unlimited_write_fn(struct work_struct *work)
{
	struct hotswap_unlimited_write *w =
		container_of(work, struct hotswap_unlimited_write, work);

	const struct cred *old = override_creds(w->file->f_cred);

	w->ret = kernel_write(w->file, w->buf, w->len, w->pos);
	revert_creds(old);
}

ssize_t hotswap_fcm_write(struct file *file, const void *buf, size_t len, loff_t *pos);

/* kernel_write() free of the caller's limits, signals and credentials. */
ssize_t hotswap_fcm_write(struct file *file, const void *buf, size_t len, loff_t *pos)
{
	struct hotswap_unlimited_write w = {
		.file = file, .buf = buf, .len = len, .pos = pos,
	};

	if (rlimit(RLIMIT_FSIZE) == RLIM_INFINITY && !fatal_signal_pending(current)) {
		hotswap_unlimited_write_fn(&w.work);
		return w.ret;
	}
	INIT_WORK_ONSTACK(&w.work, hotswap_unlimited_write_fn);
	queue_work(system_dfl_wq, &w.work);
	flush_work(&w.work);
	destroy_work_on_stack(&w.work);
	return w.ret;
}
EXPORT_SYMBOL_GPL(hotswap_fcm_write);
