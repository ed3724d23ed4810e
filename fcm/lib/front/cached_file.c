// SPDX-License-Identifier: GPL-2.0
/*
 * The cached-file device's file_operations. The Rust miscdevice
 * abstraction has no llseek, fsync or flush, which a file needs, so the
 * table and the registration live here, with the few VFS helpers the
 * handlers need; every handler is Rust (cached_file.rs).
 */
#include <linux/fadvise.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/stat.h>
#include <linux/string.h>

#include "hotswapfs.h"

int hotswap_file_open(struct inode *inode, struct file *file);
int hotswap_file_release(struct inode *inode, struct file *file);
int hotswap_file_flush(struct file *file, fl_owner_t id);
ssize_t hotswap_file_read(struct file *file, char __user *buf, size_t len, loff_t *pos);
ssize_t hotswap_file_write(struct file *file, const char __user *buf, size_t len, loff_t *pos);
loff_t hotswap_file_llseek(struct file *file, loff_t offset, int whence);
int hotswap_file_fsync(struct file *file, loff_t start, loff_t end, int datasync);
long hotswap_file_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
int hotswap_file_drop_cache(struct file *file);

int hotswap_file_register(void);
void hotswap_file_unregister(void);
int hotswap_file_check_backing(struct file *backing, struct file *self);
struct file *hotswap_file_open_backing(struct file *backing, bool writable);
int hotswap_file_write_limits(struct file *backing, loff_t pos, size_t *count);
bool hotswap_file_writable(struct file *file);
u32 hotswap_file_wb_err_sample(struct file *file);
int hotswap_file_wb_err_check(struct file *file, u32 *since);
int hotswap_file_wb_err_since(struct file *file, u32 since);
bool hotswap_file_appends(struct file *file);
void *hotswap_file_private(struct file *file);
void hotswap_file_set_private(struct file *file, void *data);
loff_t hotswap_file_seek(struct file *file, loff_t offset, int whence, loff_t size);
int hotswap_file_change_stamp(struct file *file, s64 *stamp);
int hotswap_file_label(struct file *file, struct file *backing, char *buf, size_t len);

/*
 * posix_fadvise(2): POSIX_FADV_DONTNEED writes the file's dirty pages back
 * and drops its cached pages (all of them: an FCM evicts by count, not by
 * range); the other advice changes nothing, as on most filesystems. Also
 * hotswapfs's (hotswapfs_file.c).
 */
int hotswap_file_fadvise(struct file *file, loff_t offset, loff_t len, int advice);

int hotswap_file_fadvise(struct file *file, loff_t offset, loff_t len, int advice)
{
	switch (advice) {
	case POSIX_FADV_DONTNEED:
		return hotswap_file_drop_cache(file);
	case POSIX_FADV_NORMAL:
	case POSIX_FADV_RANDOM:
	case POSIX_FADV_SEQUENTIAL:
	case POSIX_FADV_WILLNEED:
	case POSIX_FADV_NOREUSE:
		return 0;
	default:
		return -EINVAL;
	}
}

/*
 * The VFS serializes the file position of regular files only; a cached
 * file's read(2) and write(2) move it too, so ask for the same
 * (FMODE_ATOMIC_POS: threads sharing a descriptor never write at the same
 * offset).
 */
static int hotswap_file_open_atomic_pos(struct inode *inode, struct file *file)
{
	file->f_mode |= FMODE_ATOMIC_POS;
	return hotswap_file_open(inode, file);
}

static const struct file_operations hotswap_file_fops = {
	.owner = THIS_MODULE,
	.open = hotswap_file_open_atomic_pos,
	.release = hotswap_file_release,
	.flush = hotswap_file_flush,
	.read = hotswap_file_read,
	.write = hotswap_file_write,
	.llseek = hotswap_file_llseek,
	.fsync = hotswap_file_fsync,
	.fadvise = hotswap_file_fadvise,
	.unlocked_ioctl = hotswap_file_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice hotswap_file_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "hotswap-file",
	.fops = &hotswap_file_fops,
	.mode = 0666,
};

int hotswap_file_register(void)
{
	return misc_register(&hotswap_file_misc);
}

void hotswap_file_unregister(void)
{
	misc_deregister(&hotswap_file_misc);
}

/*
 * Whether a file's bytes are the same for every opener, so that one cache
 * may serve them all: its data lives in the page cache (the address space
 * can read folios), and its filesystem is not one that makes up contents
 * per open or per reader (its address space reads folios or takes writes:
 * tmpfs has only the latter). Pseudo filesystems mark themselves
 * SB_I_NOEXEC (proc, sysfs and cgroupfs through kernfs, bpf, mqueue,
 * binfmt_misc); debugfs, tracefs and securityfs files have empty address
 * space operations; overlayfs, whose address spaces are empty too, serves
 * its real files' bytes and is let in by name; configfs (ram
 * pages, no mark) and FUSE (a daemon answers each request, and may answer
 * by who asks) are named.
 */
static bool hotswap_file_same_for_everyone(struct file *backing)
{
	struct super_block *sb = file_inode(backing)->i_sb;
	const struct address_space_operations *aops = backing->f_mapping->a_ops;

	/* Its files' data is the real (lower or upper) files'. */
	if (sb->s_magic == OVERLAYFS_SUPER_MAGIC)
		return true;
	if (!aops || !(aops->read_folio || aops->write_begin))
		return false;
	if (sb->s_iflags & SB_I_NOEXEC)
		return false;
	return sb->s_magic != CONFIGFS_MAGIC && sb->s_magic != FUSE_SUPER_MAGIC;
}

/*
 * Whether @backing may be cached for @self: a regular file whose bytes do
 * not depend on who opened it, readable, and writable if @self was opened
 * for writing; never the device itself.
 */
int hotswap_file_check_backing(struct file *backing, struct file *self)
{
	umode_t mode = file_inode(backing)->i_mode;

	if (backing->f_op == &hotswap_file_fops)
		return -EINVAL;
	if (S_ISDIR(mode))
		return -EISDIR;
	if (!S_ISREG(mode))
		return -EINVAL;
	if (!(backing->f_mode & FMODE_READ))
		return -EBADF;
	if ((self->f_mode & FMODE_WRITE) && !(backing->f_mode & FMODE_WRITE))
		return -EBADF;
	/*
	 * The FCM writes pages back where they belong, which an append-only
	 * file forbids (an O_APPEND descriptor of one is all open(2) gives),
	 * and an immutable one not at all: dentry_open skips those checks.
	 */
	if ((self->f_mode & FMODE_WRITE) &&
	    (IS_APPEND(file_inode(backing)) || IS_IMMUTABLE(file_inode(backing))))
		return -EPERM;
	if (!hotswap_file_same_for_everyone(backing))
		return -EOPNOTSUPP;
	return 0;
}

/*
 * The FCM's own file of @backing's inode: opened with the credentials
 * @backing was opened with (which were checked when it was), for reading,
 * and for writing if @writable, with none of the opener's flags. An
 * O_APPEND, O_DIRECT or O_SYNC of whoever attached first would otherwise
 * steer every write-back (O_APPEND: every page would land at EOF).
 */
struct file *hotswap_file_open_backing(struct file *backing, bool writable)
{
	int flags = (writable ? O_RDWR : O_RDONLY) | O_LARGEFILE;

	return dentry_open(&backing->f_path, flags, backing->f_cred);
}

/*
 * The VFS's checks of a write of *@count bytes at @pos against the backing
 * file's limits: EFBIG past s_maxbytes, and RLIMIT_FSIZE (SIGXFSZ, then
 * EFBIG, or a shorter count).
 */
int hotswap_file_write_limits(struct file *backing, loff_t pos, size_t *count)
{
	loff_t n = *count;
	int ret = generic_write_check_limits(backing, pos, &n);

	if (!ret)
		*count = n;
	return ret;
}

/*
 * The write-back errors of the inode's page cache (its mapping's errseq),
 * as each opener is to hear of them once: the FCM's files are shared by
 * every opener, so the struct file's own errseq cursor would tell only
 * the first to fsync. Each opener keeps its own cursor, sampled at attach.
 */
u32 hotswap_file_wb_err_sample(struct file *file)
{
	return errseq_sample(&file->f_mapping->wb_err);
}

int hotswap_file_wb_err_check(struct file *file, u32 *since)
{
	return errseq_check_and_advance(&file->f_mapping->wb_err, since);
}

/* The same, without moving anyone's cursor (a close's own write-back). */
int hotswap_file_wb_err_since(struct file *file, u32 since)
{
	return errseq_check(&file->f_mapping->wb_err, since);
}

bool hotswap_file_writable(struct file *file)
{
	return file->f_mode & FMODE_WRITE;
}

bool hotswap_file_appends(struct file *file)
{
	return file->f_flags & O_APPEND;
}

void *hotswap_file_private(struct file *file)
{
	return file->private_data;
}

void hotswap_file_set_private(struct file *file, void *data)
{
	file->private_data = data;
}

/* lseek by the VFS rules, for a file of @size bytes. */
loff_t hotswap_file_seek(struct file *file, loff_t offset, int whence, loff_t size)
{
	return generic_file_llseek_size(file, offset, whence, MAX_LFS_FILESIZE, size);
}

/*
 * The change attributes of @file's inode as stat(2) sees them, into
 * stamp[HOTSWAP_STAMP_LEN]: size, ctime, mtime and, where the filesystem
 * keeps one, its change cookie (i_version). The front end compares two
 * stamps to notice that someone changed the file behind an FCM. Asking
 * for the times through getattr marks them queried, so a multigrain
 * filesystem gives the next change a distinct ctime.
 */
#define HOTSWAP_STAMP_LEN 6
int hotswap_file_change_stamp(struct file *file, s64 *stamp)
{
	struct kstat st;
	int err;

	err = vfs_getattr_nosec(&file->f_path, &st,
				STATX_SIZE | STATX_CTIME | STATX_MTIME | STATX_CHANGE_COOKIE,
				AT_STATX_SYNC_AS_STAT);
	if (err)
		return err;
	stamp[0] = st.size;
	stamp[1] = st.ctime.tv_sec;
	stamp[2] = st.ctime.tv_nsec;
	stamp[3] = st.mtime.tv_sec;
	stamp[4] = st.mtime.tv_nsec;
	stamp[5] = (st.result_mask & STATX_CHANGE_COOKIE) ? (s64)st.change_cookie : 0;
	return 0;
}

/*
 * What an FCM is labelled with in hswapctl status: the path of the file a
 * program opened (a hotswapfs file's own, on the mount; else the backing
 * file the device was given), into @buf, NUL-terminated, the end kept if
 * it is longer. 0 or a negative errno.
 */
int hotswap_file_label(struct file *file, struct file *backing, char *buf, size_t len)
{
	const struct path *path = file->f_op == &hotswapfs_file_fops ? &file->f_path :
								     &backing->f_path;
	char *tmp, *p;
	size_t n;

	if (!len)
		return -EINVAL;
	tmp = kmalloc(PATH_MAX, GFP_KERNEL);
	if (!tmp)
		return -ENOMEM;
	p = d_path(path, tmp, PATH_MAX);
	if (IS_ERR(p)) {
		kfree(tmp);
		return PTR_ERR(p);
	}
	n = strlen(p);
	if (n >= len)
		p += n - (len - 1);
	strscpy(buf, p, len);
	kfree(tmp);
	return 0;
}
