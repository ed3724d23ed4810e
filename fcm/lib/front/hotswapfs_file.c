// SPDX-License-Identifier: GPL-2.0
/*
 * hotswapfs's files. A regular file's open attaches it to the FCM of its
 * lower inode (one per inode, shared with every other opener and with
 * /dev/hotswap-file); its reads and writes are the FCM's, which is the
 * file's page cache: the upper inode has no folios (empty_aops), so
 * O_DIRECT is refused by open(2) (EINVAL), and splice, sendfile and
 * copy_file_range go through read_iter/write_iter.
 *
 * mmap maps the FCM's own pages (hotswapfs_fault), so a mapping sees
 * every write through the FCM; writable shared mappings are refused.
 *
 * Directories read the lower directory through a file opened with the
 * mounter's credentials.
 */
#include <linux/fadvise.h>
#include <linux/file.h>
#include <linux/fs_stack.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/splice.h>
#include <linux/uio.h>
#include "hotswapfs.h"

int hotswap_file_fadvise(struct file *file, loff_t offset, loff_t len, int advice);

/* Bytes a kernel-buffer read or write moves per call into the FCM. */
#define HOTSWAPFS_BOUNCE (16 * PAGE_SIZE)

/*
 * Moves @iter's bytes at *@pos between @file's FCM and the buffers @iter
 * describes: user memory directly (the FCM copies with fault checks),
 * kernel memory (splice, kernel_read) through a bounce buffer. Stops at
 * the first short count; the bytes moved, else the error.
 */
static ssize_t hotswapfs_io(struct file *file, loff_t *pos, struct iov_iter *iter, bool write)
{
	ssize_t done = 0, n = 0;
	void *bounce;

	if (user_backed_iter(iter)) {
		while (iov_iter_count(iter)) {
			size_t len = min(iter_iov_len(iter), iov_iter_count(iter));

			if (!len) {
				/* An empty segment: step over it. */
				iov_iter_advance(iter, 0);
				continue;
			}
			n = hotswap_file_io(file, (unsigned long)iter_iov_addr(iter), len, pos,
					    true, write);
			if (n <= 0)
				break;
			iov_iter_advance(iter, n);
			done += n;
			if (n < len)
				break;
		}
		return done ? done : n;
	}

	bounce = kvmalloc(min_t(size_t, iov_iter_count(iter), HOTSWAPFS_BOUNCE), GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;
	while (iov_iter_count(iter)) {
		size_t len = min_t(size_t, iov_iter_count(iter), HOTSWAPFS_BOUNCE);

		if (write) {
			size_t got = copy_from_iter(bounce, len, iter);

			if (!got) {
				n = -EFAULT;
				break;
			}
			n = hotswap_file_io(file, (unsigned long)bounce, got, pos, false, true);
			if (n < (ssize_t)got)
				iov_iter_revert(iter, got - max_t(ssize_t, n, 0));
		} else {
			n = hotswap_file_io(file, (unsigned long)bounce, len, pos, false, false);
			if (n > 0) {
				size_t put = copy_to_iter(bounce, n, iter);

				/* Not read, as far as the caller knows. */
				*pos -= n - put;
				n = put;
			}
		}
		if (n <= 0)
			break;
		done += n;
		if (n < len)
			break;
	}
	kvfree(bounce);
	return done ? done : n;
}

/*
 * The lower file the FCM is reached through: opened with the mounter's
 * credentials (the caller's open was checked against the upper inode),
 * for reading, and for writing if the caller writes; none of the caller's
 * flags, which are the upper file's (cached_file.rs explains why).
 */
static int hotswapfs_file_open(struct inode *inode, struct file *file)
{
	int acc = (file->f_mode & FMODE_WRITE) ? O_RDWR : O_RDONLY;
	struct path lower_path;
	struct file *lower;
	bool revalidated = false;
	loff_t size;
	int err;

	hotswapfs_refresh(inode);
	hotswapfs_lower_path(file->f_path.dentry, &lower_path);
	lower = dentry_open(&lower_path, acc | O_LARGEFILE, hotswapfs_creds(inode->i_sb));
	if (IS_ERR(lower))
		return PTR_ERR(lower);
	err = hotswap_file_open(inode, file);
	if (err) {
		fput(lower);
		return err;
	}
	/*
	 * Under the inode lock, shared: a truncate (exclusive) either ends
	 * before the FCM is made or finds it made.
	 */
	inode_lock_shared(inode);
	err = hotswap_file_attach_file(file, lower, &revalidated);
	if (!err && !READ_ONCE(hotswapfs_i(inode)->fcm_hold)) {
		void *hold = hotswap_file_hold(file);

		if (hold && cmpxchg(&hotswapfs_i(inode)->fcm_hold, NULL, hold))
			hotswap_fcm_unhold(hold);
	}
	if (!err) {
		size = hotswap_file_size(file);
		spin_lock(&inode->i_lock);
		/* Only grown, unless the lower file changed behind the FCM. */
		if (size >= 0 && (revalidated || size > i_size_read(inode)))
			i_size_write(inode, size);
		spin_unlock(&inode->i_lock);
	}
	inode_unlock_shared(inode);
	if (err)
		hotswap_file_release(inode, file);
	return err;
}

static ssize_t hotswapfs_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	/* An FCM read may wait for I/O or a swap. */
	if (iocb->ki_flags & IOCB_NOWAIT)
		return -EAGAIN;
	if (!iov_iter_count(to))
		return 0;
	return hotswapfs_io(iocb->ki_filp, &iocb->ki_pos, to, false);
}

/*
 * Writers share the inode lock (so that the FCM, not the lock, decides
 * how parallel they are) except when privileges must be dropped first or
 * the write appends (O_APPEND, RWF_APPEND): an append holds it
 * exclusively from finding the end to the last byte, so a writev lands
 * in one piece. Truncate holds it exclusively too, so it is ordered
 * against every write. The upper size only grows here, under i_lock,
 * whatever order parallel writers finish in.
 */
static ssize_t hotswapfs_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct file *file = iocb->ki_filp;
	struct inode *inode = file_inode(file);
	bool exclusive = iocb->ki_flags & IOCB_APPEND;
	loff_t end;
	ssize_t ret;

	if (iocb->ki_flags & IOCB_NOWAIT)
		return -EAGAIN;
	if (!iov_iter_count(from))
		return 0;
	/* A set-id bit given behind the mount since open: dropped again. */
	hotswapfs_refresh(inode);
	if (!exclusive) {
		inode_lock_shared(inode);
		/* S_NOSEC is cleared under the exclusive lock: look again. */
		if (!IS_NOSEC(inode)) {
			inode_unlock_shared(inode);
			exclusive = true;
		}
	}
	if (exclusive) {
		inode_lock(inode);
		ret = file_remove_privs(file);
		if (ret)
			goto out;
	}
	if (iocb->ki_flags & IOCB_APPEND) {
		end = hotswap_file_size(file);
		if (end < 0) {
			ret = end;
			goto out;
		}
		iocb->ki_pos = end;
	}
	ret = hotswapfs_io(file, &iocb->ki_pos, from, true);
	if (ret > 0) {
		spin_lock(&inode->i_lock);
		if (iocb->ki_pos > i_size_read(inode))
			i_size_write(inode, iocb->ki_pos);
		inode_set_mtime_to_ts(inode, inode_set_ctime_current(inode));
		spin_unlock(&inode->i_lock);
	}
out:
	if (exclusive)
		inode_unlock(inode);
	else
		inode_unlock_shared(inode);
	if (ret > 0)
		ret = generic_write_sync(iocb, ret);
	return ret;
}

/*
 * A fault maps the FCM's own page (hotswapfs_mmap.rs, fcm_mapped.c): lent
 * with a reference that becomes the PTE's, then checked under the page
 * lock, since the FCM may have freed it in between (its free unmaps a
 * page only after clearing the mark under that lock).
 */
static vm_fault_t hotswapfs_fault(struct vm_fault *vmf)
{
	struct page *page;
	int err;

	err = hotswap_file_page(vmf->vma->vm_file, vmf->pgoff, &page);
	switch (err) {
	case 0:
		break;
	case -ENOMEM:
		return VM_FAULT_OOM;
	case -EINTR:
	case -ERESTARTSYS:
	case -EAGAIN:
		/* A signal during a swap: back to user space, then again. */
		return VM_FAULT_NOPAGE;
	default:
		/* Past the end of the file, or the FCM could not read it. */
		return VM_FAULT_SIGBUS;
	}
	lock_page(page);
	if (!hotswap_fcm_page_live(page)) {
		unlock_page(page);
		put_page(page);
		return VM_FAULT_NOPAGE;
	}
	vmf->page = page;
	return VM_FAULT_LOCKED;
}

static const struct vm_operations_struct hotswapfs_vm_ops = {
	.fault = hotswapfs_fault,
};

/*
 * Private mappings and read-only shared ones map the FCM's pages; a
 * write to a private one copies the page (the FCM's stays as it is).
 * Writable shared mappings are refused (ENODEV): their stores would
 * bypass the FCM's dirty tracking. A read-only shared mapping of a
 * descriptor open for writing cannot be made writable later either
 * (mprotect: EACCES).
 */
static int hotswapfs_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct inode *inode = file_inode(file);
	void *hold = READ_ONCE(hotswapfs_i(inode)->fcm_hold);
	int err;

	if ((vma->vm_flags & (VM_SHARED | VM_WRITE)) == (VM_SHARED | VM_WRITE))
		return -ENODEV;
	/* The pages' mappings are listed on what the inode holds. */
	if (!hold)
		return -ENOMEM;
	err = hotswap_fcm_maps_add(hotswap_fcm_hold_maps(hold), inode->i_mapping);
	if (err)
		return err;
	if (vma->vm_flags & VM_SHARED)
		vm_flags_clear(vma, VM_MAYWRITE);
	vma->vm_ops = &hotswapfs_vm_ops;
	return 0;
}

const struct file_operations hotswapfs_file_fops = {
	.owner = THIS_MODULE,
	.open = hotswapfs_file_open,
	.release = hotswap_file_release,
	.flush = hotswap_file_flush,
	.read_iter = hotswapfs_read_iter,
	.write_iter = hotswapfs_write_iter,
	.llseek = hotswap_file_llseek,
	.fsync = hotswap_file_fsync,
	.fadvise = hotswap_file_fadvise,
	.mmap = hotswapfs_mmap,
	.splice_read = copy_splice_read,
	.splice_write = iter_file_splice_write,
};

static int hotswapfs_dir_open(struct inode *inode, struct file *file)
{
	struct path lower_path;
	struct file *lower;

	hotswapfs_lower_path(file->f_path.dentry, &lower_path);
	lower = dentry_open(&lower_path, O_RDONLY | O_DIRECTORY | O_LARGEFILE,
			    hotswapfs_creds(inode->i_sb));
	if (IS_ERR(lower))
		return PTR_ERR(lower);
	file->private_data = lower;
	return 0;
}

static int hotswapfs_dir_release(struct inode *inode, struct file *file)
{
	fput(file->private_data);
	return 0;
}

static int hotswapfs_iterate(struct file *file, struct dir_context *ctx)
{
	struct file *lower = file->private_data;
	int err;

	lower->f_pos = ctx->pos;
	scoped_with_creds(hotswapfs_creds(file_inode(file)->i_sb))
		err = iterate_dir(lower, ctx);
	fsstack_copy_attr_atime(file_inode(file), file_inode(lower));
	return err;
}

static loff_t hotswapfs_dir_llseek(struct file *file, loff_t offset, int whence)
{
	struct file *lower = file->private_data;
	loff_t pos;

	lower->f_pos = file->f_pos;
	pos = vfs_llseek(lower, offset, whence);
	if (pos >= 0)
		file->f_pos = pos;
	return pos;
}

static int hotswapfs_dir_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	return vfs_fsync(file->private_data, datasync);
}

const struct file_operations hotswapfs_dir_fops = {
	.owner = THIS_MODULE,
	.open = hotswapfs_dir_open,
	.release = hotswapfs_dir_release,
	.read = generic_read_dir,
	.iterate_shared = hotswapfs_iterate,
	.llseek = hotswapfs_dir_llseek,
	.fsync = hotswapfs_dir_fsync,
};
