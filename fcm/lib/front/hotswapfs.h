/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hotswapfs: a stackable filesystem whose regular files' data goes
 * through the File Cache Manager of their lower inode. Shared by its C
 * parts: the superblock and inodes (hotswapfs_super.c), the namespace
 * (hotswapfs_namei.c) and the files (hotswapfs_file.c). The data path is
 * Rust (front/hotswapfs.rs and cached_file.rs), declared here.
 */
#ifndef HOTSWAPFS_H
#define HOTSWAPFS_H

#include <linux/cred.h>
#include <linux/dcache.h>
#include <linux/fs.h>
#include <linux/mount.h>
#include <linux/path.h>

/* "HSWF" */
#define HOTSWAPFS_MAGIC 0x46575348

/* sb->s_fs_info */
struct hotswapfs_sb {
	/* A private clone of the lower directory's mount (kern_unmount). */
	struct vfsmount *lower_mnt;
	/* The mounter's credentials: every lower operation runs with them. */
	const struct cred *creator_cred;
};

struct hotswapfs_inode {
	struct inode vfs_inode;
	/* igrab'd when the inode is made, put at eviction. */
	struct inode *lower;
	/*
	 * A regular file's hold on its FCM (hotswap_file_hold), taken by the
	 * first open and let go of at eviction: the cached pages outlive the
	 * descriptors, as a page cache does. Set once, by cmpxchg.
	 */
	void *fcm_hold;
};

static inline struct hotswapfs_sb *hotswapfs_sb(const struct super_block *sb)
{
	return sb->s_fs_info;
}

static inline struct hotswapfs_inode *hotswapfs_i(const struct inode *inode)
{
	return container_of(inode, struct hotswapfs_inode, vfs_inode);
}

static inline struct inode *hotswapfs_lower_inode(const struct inode *inode)
{
	return hotswapfs_i(inode)->lower;
}

/* An upper dentry's lower dentry (d_fsdata, set at lookup or create). */
static inline struct dentry *hotswapfs_lower_dentry(const struct dentry *dentry)
{
	return dentry->d_fsdata;
}

static inline void hotswapfs_lower_path(const struct dentry *dentry, struct path *lower)
{
	lower->mnt = hotswapfs_sb(dentry->d_sb)->lower_mnt;
	lower->dentry = hotswapfs_lower_dentry(dentry);
}

static inline const struct cred *hotswapfs_creds(const struct super_block *sb)
{
	return hotswapfs_sb(sb)->creator_cred;
}

/* hotswapfs_super.c */
struct inode *hotswapfs_iget(struct super_block *sb, struct inode *lower);
void hotswapfs_refresh(struct inode *inode);
int hotswapfs_register(void);
void hotswapfs_unregister(void);

/* hotswapfs_namei.c */
extern const struct inode_operations hotswapfs_dir_iops;
extern const struct inode_operations hotswapfs_file_iops;
extern const struct inode_operations hotswapfs_symlink_iops;
extern const struct inode_operations hotswapfs_special_iops;
extern const struct dentry_operations hotswapfs_dops;
extern const struct xattr_handler * const hotswapfs_xattr_handlers[];

/* hotswapfs_file.c */
extern const struct file_operations hotswapfs_file_fops;
extern const struct file_operations hotswapfs_dir_fops;

/*
 * The data path (Rust). A regular file's open attaches it to the FCM of
 * its lower inode, as /dev/hotswap-file's attach does (cached_file.rs);
 * from then on the file is an opener of that FCM.
 */
int hotswap_file_open(struct inode *inode, struct file *file);
int hotswap_file_release(struct inode *inode, struct file *file);
int hotswap_file_flush(struct file *file, fl_owner_t id);
loff_t hotswap_file_llseek(struct file *file, loff_t offset, int whence);
int hotswap_file_fsync(struct file *file, loff_t start, loff_t end, int datasync);
int hotswap_file_drop_cache(struct file *file);
/*
 * Attaches @file to the FCM of @lower's inode; takes over @lower's
 * reference. *@revalidated: the FCM found the file changed behind it.
 */
int hotswap_file_attach_file(struct file *file, struct file *lower, bool *revalidated);
/* Bytes moved at *@pos (advanced), or an errno; @user: @buf is a user address. */
ssize_t hotswap_file_io(struct file *file, unsigned long buf, size_t len, loff_t *pos,
			bool user, bool write);
/* A hold on an attached file's FCM, or NULL; hotswap_fcm_unhold lets go. */
void *hotswap_file_hold(struct file *file);
void hotswap_fcm_unhold(void *hold);
/* Waits for the FCMs whose last holds were let go of to end. */
void hotswap_fcm_wait_for_ends(void);
/* The FCM's size of an attached file, or an errno. */
loff_t hotswap_file_size(struct file *file);
/* -ENOENT if @lower has no FCM; else its size in *@size, or an errno. */
int hotswap_fcm_inode_size(struct inode *lower, loff_t *size, bool *revalidated);
/* Writes the FCMs of every file of @lower_sb back into the lower files. */
int hotswap_fcm_sync_sb(struct super_block *lower_sb);
/* -ENOENT if @lower has no FCM; else writes its dirty pages back. */
int hotswap_fcm_inode_write_back(struct inode *lower);
/*
 * hotswapfs is about to change @lower itself (times, mode, owner): its FCM
 * first notices a change made behind it; after the change, _settled lets
 * the FCM's stamp take it.
 */
void hotswap_fcm_inode_revalidate(struct inode *lower);
void hotswap_fcm_inode_settled(struct inode *lower);
/* -ENOENT if @lower has no FCM; else truncates through it. */
int hotswap_fcm_inode_truncate(struct inode *lower, loff_t size);

/*
 * mmap (front/hotswapfs_mmap.rs, memory/fcm_mapped.c). Page @index of an
 * attached file's FCM, lent to a fault (a reference for it), in *@page;
 * -ENXIO past the end of the file.
 */
int hotswap_file_page(struct file *file, u64 index, struct page **page);
/* The mappings handle of the FCM @hold keeps (live while held). */
void *hotswap_fcm_hold_maps(void *hold);
int hotswap_fcm_maps_add(void *maps, struct address_space *mapping);
void hotswap_fcm_maps_remove(void *maps, struct address_space *mapping);
/* Under the page lock: whether the FCM still has @page (else fault again). */
bool hotswap_fcm_page_live(struct page *page);

#endif
