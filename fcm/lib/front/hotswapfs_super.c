// SPDX-License-Identifier: GPL-2.0
/*
 * hotswapfs's superblock and inodes: `mount -t hotswapfs -o lowerdir=DIR
 * none MNT` stacks on one directory of an ordinary filesystem. Every
 * upper inode stands for one lower inode (hashed by its address, as
 * ecryptfs does), so hard links stay links and one FCM serves every
 * name of a file.
 *
 * The lower directory is reached through a private clone of its mount,
 * as overlayfs reaches its layers: the mount the user sees may be
 * unmounted or remounted elsewhere without pulling it from under us, and
 * an FCM's own lower file (which may be written back after the last
 * upper file closed) pins the clone, never the upper mount, so unmount
 * is EBUSY only while upper files are open or mapped.
 */
#include <linux/file.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/fs_stack.h>
#include <linux/magic.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/writeback.h>
#include <linux/xattr.h>
#include "hotswapfs.h"

static struct kmem_cache *hotswapfs_inode_cache;

/* The inode flags the lower inode decides (overlayfs's copy mask). */
#define HOTSWAPFS_COPY_I_FLAGS (S_APPEND | S_IMMUTABLE | S_SYNC | S_NOATIME)

static int hotswapfs_inode_test(struct inode *inode, void *lower)
{
	return hotswapfs_lower_inode(inode) == lower;
}

static int hotswapfs_inode_set(struct inode *inode, void *opaque)
{
	struct inode *lower = opaque;

	hotswapfs_i(inode)->lower = lower;
	fsstack_copy_attr_all(inode, lower);
	/* Not yet visible: only the flags the lower inode decides. */
	inode->i_flags &= HOTSWAPFS_COPY_I_FLAGS;
	fsstack_copy_inode_size(inode, lower);
	inode->i_ino = lower->i_ino;
	/* No folios: the FCM is the page cache (empty_aops, no O_DIRECT). */
	if (S_ISDIR(inode->i_mode)) {
		inode->i_op = &hotswapfs_dir_iops;
		inode->i_fop = &hotswapfs_dir_fops;
	} else if (S_ISLNK(inode->i_mode)) {
		inode->i_op = &hotswapfs_symlink_iops;
	} else if (S_ISREG(inode->i_mode)) {
		inode->i_op = &hotswapfs_file_iops;
		inode->i_fop = &hotswapfs_file_fops;
	} else {
		inode->i_op = &hotswapfs_special_iops;
		init_special_inode(inode, inode->i_mode, inode->i_rdev);
	}
	return 0;
}

/*
 * Copies what decides who may do what from the lower inode: its owner,
 * mode and the flags above, which may have changed behind the mount. The
 * VFS reads them from the upper inode (setattr_prepare's owner check,
 * exec's set-uid, the append-only rules), so a stale copy would let a
 * former owner chown a file back or exec a program set-uid after it lost
 * the bit. A mode that changed, or that is set-id, also clears S_NOSEC,
 * so that the next write drops privileges again (the lower inode never
 * does: write-back runs with the mounter's CAP_FSETID). Other flags are
 * the VFS's own (S_DEAD, S_IMA, ...): set atomically, never copied. Times,
 * size and link count are not copied: getattr reports the lower inode's
 * count, and while an FCM caches a regular file its times and size are
 * its own.
 */
void hotswapfs_refresh(struct inode *inode)
{
	struct inode *lower = hotswapfs_lower_inode(inode);
	umode_t mode = READ_ONCE(lower->i_mode);
	bool changed;

	spin_lock(&inode->i_lock);
	changed = inode->i_mode != mode;
	inode->i_mode = mode;
	inode->i_uid = READ_ONCE(lower->i_uid);
	inode->i_gid = READ_ONCE(lower->i_gid);
	spin_unlock(&inode->i_lock);
	inode_set_flags(inode, READ_ONCE(lower->i_flags) & HOTSWAPFS_COPY_I_FLAGS,
			HOTSWAPFS_COPY_I_FLAGS);
	if ((changed || is_sxid(mode)) && IS_NOSEC(inode))
		inode_set_flags(inode, 0, S_NOSEC);
}

/*
 * The upper inode of @lower (a new one, or the one its other names
 * already have), referenced; an ERR_PTR if @lower is not ours to stack on.
 */
struct inode *hotswapfs_iget(struct super_block *sb, struct inode *lower)
{
	struct inode *inode;

	if (lower->i_sb != hotswapfs_sb(sb)->lower_mnt->mnt_sb)
		return ERR_PTR(-EXDEV);
	/* A name may mean another file in a casefolded directory. */
	if (IS_CASEFOLDED(lower))
		return ERR_PTR(-EREMOTE);
	if (!igrab(lower))
		return ERR_PTR(-ESTALE);
	inode = iget5_locked(sb, (unsigned long)lower, hotswapfs_inode_test,
			     hotswapfs_inode_set, lower);
	if (!inode) {
		iput(lower);
		return ERR_PTR(-ENOMEM);
	}
	if (inode_state_read_once(inode) & I_NEW)
		unlock_new_inode(inode);
	else
		iput(lower);
	return inode;
}

static struct inode *hotswapfs_alloc_inode(struct super_block *sb)
{
	struct hotswapfs_inode *hi = alloc_inode_sb(sb, hotswapfs_inode_cache, GFP_KERNEL);

	if (!hi)
		return NULL;
	hi->lower = NULL;
	hi->fcm_hold = NULL;
	return &hi->vfs_inode;
}

static void hotswapfs_free_inode(struct inode *inode)
{
	kmem_cache_free(hotswapfs_inode_cache, hotswapfs_i(inode));
}

static void hotswapfs_evict_inode(struct inode *inode)
{
	struct hotswapfs_inode *hi = hotswapfs_i(inode);

	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
	/* The FCM ends on a workqueue; it holds a lower file of its own. */
	if (hi->fcm_hold) {
		/* No mapping is left: they hold files of the inode. */
		hotswap_fcm_maps_remove(hotswap_fcm_hold_maps(hi->fcm_hold), &inode->i_data);
		hotswap_fcm_unhold(hi->fcm_hold);
	}
	if (hotswapfs_lower_inode(inode))
		iput(hotswapfs_lower_inode(inode));
}

static int hotswapfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct path lower;
	int err;

	hotswapfs_lower_path(dentry, &lower);
	scoped_with_creds(hotswapfs_creds(dentry->d_sb))
		err = vfs_statfs(&lower, buf);
	if (!err)
		buf->f_type = HOTSWAPFS_MAGIC;
	return err;
}

/*
 * sync(2), syncfs(2), unmount: the FCMs hold the dirty data, not the upper
 * inodes. Their pages go to the lower page cache, then (when waiting)
 * the lower filesystem is synced, which makes files written and closed
 * earlier durable too (overlayfs's sync_fs).
 */
static int hotswapfs_sync_fs(struct super_block *sb, int wait)
{
	struct super_block *lower = hotswapfs_sb(sb)->lower_mnt->mnt_sb;
	int err = hotswap_fcm_sync_sb(lower);
	int synced;

	if (!wait)
		return err;
	down_read(&lower->s_umount);
	synced = sync_filesystem(lower);
	up_read(&lower->s_umount);
	return err ? err : synced;
}

static const struct super_operations hotswapfs_sops = {
	.alloc_inode = hotswapfs_alloc_inode,
	.free_inode = hotswapfs_free_inode,
	.evict_inode = hotswapfs_evict_inode,
	/* Nothing to keep an unused inode for: the lower one caches it. */
	.drop_inode = inode_just_drop,
	.statfs = hotswapfs_statfs,
	.sync_fs = hotswapfs_sync_fs,
};

/* The mount's options, while it is being set up. */
struct hotswapfs_ctx {
	struct path lower;
	bool have_lower;
};

enum { Opt_lowerdir };

static const struct fs_parameter_spec hotswapfs_params[] = {
	fsparam_string("lowerdir", Opt_lowerdir),
	{}
};

static int hotswapfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct hotswapfs_ctx *ctx = fc->fs_private;
	struct fs_parse_result result;
	struct path path;
	int opt, err;

	opt = fs_parse(fc, hotswapfs_params, param, &result);
	if (opt < 0)
		return opt;
	if (opt != Opt_lowerdir)
		return -EINVAL;
	if (ctx->have_lower)
		return invalfc(fc, "lowerdir given twice");
	err = kern_path(param->string, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &path);
	if (err)
		return invalfc(fc, "lowerdir %s: cannot be looked up as a directory (%d)",
			       param->string, err);
	ctx->lower = path;
	ctx->have_lower = true;
	return 0;
}

/* Why the filesystem of @lower cannot be stacked on, or NULL. */
static const char *hotswapfs_refusal(const struct path *lower)
{
	struct super_block *lsb = lower->mnt->mnt_sb;

	if (lsb->s_magic == HOTSWAPFS_MAGIC)
		return "is itself hotswapfs";
	if (lsb->s_stack_depth + 1 > FILESYSTEM_MAX_STACK_DEPTH)
		return "is stacked too deep already";
	/* Pseudo filesystems (proc, sysfs, ...) make data up per reader. */
	if (lsb->s_iflags & SB_I_NOEXEC)
		return "is a pseudo filesystem";
	if (lsb->s_magic == FUSE_SUPER_MAGIC || lsb->s_magic == CONFIGFS_MAGIC)
		return "answers each reader itself (FUSE, configfs)";
	if (IS_CASEFOLDED(d_inode(lower->dentry)))
		return "is casefolded";
	if (mnt_idmap(lower->mnt) != &nop_mnt_idmap)
		return "is an idmapped mount";
	return NULL;
}

static int hotswapfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct hotswapfs_ctx *ctx = fc->fs_private;
	struct super_block *lsb;
	struct hotswapfs_sb *sbi;
	struct vfsmount *mnt;
	struct inode *root;
	struct cred *cred;
	const char *why;

	if (!ctx->have_lower)
		return invalfc(fc, "missing lowerdir=DIR");
	lsb = ctx->lower.mnt->mnt_sb;
	why = hotswapfs_refusal(&ctx->lower);
	if (why)
		return invalfc(fc, "lowerdir's filesystem (%s) %s", lsb->s_type->name, why);

	sbi = kzalloc(sizeof(*sbi), GFP_KERNEL);
	if (!sbi)
		return -ENOMEM;
	/* Freed by kill_sb from here on, whatever happens. */
	sb->s_fs_info = sbi;

	cred = prepare_creds();
	if (!cred)
		return -ENOMEM;
	/* Never override disk quota limits or use reserved space. */
	cap_lower(cred->cap_effective, CAP_SYS_RESOURCE);
	sbi->creator_cred = cred;

	scoped_with_creds(current_real_cred())
		mnt = clone_private_mount(&ctx->lower);
	if (IS_ERR(mnt))
		return invalfc(fc, "lowerdir: cannot clone its mount (%ld)", PTR_ERR(mnt));
	sbi->lower_mnt = mnt;

	sb->s_stack_depth = lsb->s_stack_depth + 1;
	sb->s_maxbytes = lsb->s_maxbytes;
	sb->s_time_gran = lsb->s_time_gran;
	sb->s_magic = HOTSWAPFS_MAGIC;
	sb->s_op = &hotswapfs_sops;
	sb->s_xattr = hotswapfs_xattr_handlers;
	/* The lower filesystem applies the umask (and default ACLs). */
	sb->s_iflags |= SB_I_NOUMASK;
	/* Writes skip file_remove_privs once an inode is known plain. */
	sb->s_flags |= SB_NOSEC;
	if (lsb->s_flags & SB_POSIXACL)
		sb->s_flags |= SB_POSIXACL;
	if (__mnt_is_readonly(mnt))
		sb->s_flags |= SB_RDONLY;
	set_default_d_op(sb, &hotswapfs_dops);

	root = hotswapfs_iget(sb, d_inode(mnt->mnt_root));
	if (IS_ERR(root))
		return PTR_ERR(root);
	sb->s_root = d_make_root(root);
	if (!sb->s_root)
		return -ENOMEM;
	sb->s_root->d_fsdata = dget(mnt->mnt_root);
	return 0;
}

static int hotswapfs_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, hotswapfs_fill_super);
}

static void hotswapfs_free_fc(struct fs_context *fc)
{
	struct hotswapfs_ctx *ctx = fc->fs_private;

	if (ctx->have_lower)
		path_put(&ctx->lower);
	kfree(ctx);
}

static const struct fs_context_operations hotswapfs_context_ops = {
	.free = hotswapfs_free_fc,
	.parse_param = hotswapfs_parse_param,
	.get_tree = hotswapfs_get_tree,
};

static int hotswapfs_init_fs_context(struct fs_context *fc)
{
	struct hotswapfs_ctx *ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);

	if (!ctx)
		return -ENOMEM;
	fc->fs_private = ctx;
	fc->ops = &hotswapfs_context_ops;
	return 0;
}

static void hotswapfs_kill_sb(struct super_block *sb)
{
	struct hotswapfs_sb *sbi = hotswapfs_sb(sb);

	kill_anon_super(sb);
	/*
	 * Evicting the inodes let go of their FCMs' holds: wait for those
	 * ends, so that the lower filesystem (whose files the FCMs hold) is
	 * not busy once umount returns.
	 */
	hotswap_fcm_wait_for_ends();
	/* A kworker's fput is deferred: let go of the lower files now. */
	flush_delayed_fput();
	if (!sbi)
		return;
	if (!IS_ERR_OR_NULL(sbi->lower_mnt))
		kern_unmount(sbi->lower_mnt);
	if (sbi->creator_cred)
		put_cred(sbi->creator_cred);
	kfree(sbi);
}

/*
 * No FS_USERNS_MOUNT: mounting needs CAP_SYS_ADMIN in the initial user
 * namespace. A mounted superblock holds the filesystem type, which holds
 * this module: rmmod is refused while anything is mounted.
 */
static struct file_system_type hotswapfs_type = {
	.owner = THIS_MODULE,
	.name = "hotswapfs",
	.init_fs_context = hotswapfs_init_fs_context,
	.parameters = hotswapfs_params,
	.kill_sb = hotswapfs_kill_sb,
};

static void hotswapfs_inode_init_once(void *obj)
{
	struct hotswapfs_inode *hi = obj;

	inode_init_once(&hi->vfs_inode);
}

int hotswapfs_register(void)
{
	int err;

	hotswapfs_inode_cache = kmem_cache_create("hotswapfs_inode",
						  sizeof(struct hotswapfs_inode), 0,
						  SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT,
						  hotswapfs_inode_init_once);
	if (!hotswapfs_inode_cache)
		return -ENOMEM;
	err = register_filesystem(&hotswapfs_type);
	if (err)
		kmem_cache_destroy(hotswapfs_inode_cache);
	return err;
}

void hotswapfs_unregister(void)
{
	unregister_filesystem(&hotswapfs_type);
	/* Inodes are freed after an RCU grace period. */
	rcu_barrier();
	kmem_cache_destroy(hotswapfs_inode_cache);
}
