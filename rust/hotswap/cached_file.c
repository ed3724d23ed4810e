// SPDX-License-Identifier: GPL-2.0
/*
 * The cached-file device's file_operations. The Rust miscdevice
 * abstraction has no llseek or fsync, which a file needs, so the table and
 * the registration live here; every handler is Rust (cached_file.rs).
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>

int hotswap_file_open(struct inode *inode, struct file *file);
int hotswap_file_release(struct inode *inode, struct file *file);
ssize_t hotswap_file_read(struct file *file, char __user *buf, size_t len, loff_t *pos);
ssize_t hotswap_file_write(struct file *file, const char __user *buf, size_t len, loff_t *pos);
loff_t hotswap_file_llseek(struct file *file, loff_t offset, int whence);
int hotswap_file_fsync(struct file *file, loff_t start, loff_t end, int datasync);
long hotswap_file_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

int hotswap_file_register(void);
void hotswap_file_unregister(void);
int hotswap_file_check_backing(struct file *backing, struct file *self);
bool hotswap_file_writable(struct file *file);
void *hotswap_file_private(struct file *file);
void hotswap_file_set_private(struct file *file, void *data);

static const struct file_operations hotswap_file_fops = {
	.owner = THIS_MODULE,
	.open = hotswap_file_open,
	.release = hotswap_file_release,
	.read = hotswap_file_read,
	.write = hotswap_file_write,
	.llseek = hotswap_file_llseek,
	.fsync = hotswap_file_fsync,
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

/* Whether @backing may be cached for @self: a regular file, readable, and
 * writable if @self was opened for writing; never the device itself. */
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
	return 0;
}

bool hotswap_file_writable(struct file *file)
{
	return file->f_mode & FMODE_WRITE;
}

void *hotswap_file_private(struct file *file)
{
	return file->private_data;
}

void hotswap_file_set_private(struct file *file, void *data)
{
	file->private_data = data;
}

loff_t hotswap_file_seek(struct file *file, loff_t offset, int whence, loff_t size);

/* lseek by the VFS rules, for a file of @size bytes. */
loff_t hotswap_file_seek(struct file *file, loff_t offset, int whence, loff_t size)
{
	return generic_file_llseek_size(file, offset, whence, MAX_LFS_FILESIZE, size);
}
