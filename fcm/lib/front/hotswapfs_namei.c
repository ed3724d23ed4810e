// SPDX-License-Identifier: GPL-2.0
/*
 * hotswapfs's namespace: every name operation is the lower filesystem's,
 * run with the mounter's credentials after the caller's were checked
 * (overlayfs's rule). Permission is the lower inode's verdict for the
 * caller (its mode and ACLs) and for the mounter, so the mount never
 * grants what the lower tree does not; new files belong to the caller.
 *
 * An upper dentry holds its lower dentry in d_fsdata (ecryptfs's layout);
 * a rename moves both, so each keeps its own. Names changed in the lower
 * tree behind the mount are noticed by d_revalidate and looked up again.
 */
#include <linux/fs_stack.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/posix_acl.h>
#include <linux/security.h>
#include <linux/xattr.h>
#include "hotswapfs.h"

/* The mounter's credentials with the caller's fsuid/fsgid: for creating. */
static struct cred *hotswapfs_owner_creds(struct dentry *dentry, umode_t mode)
{
	const struct cred *caller = current_cred();
	struct cred *cred;
	int err;

	scoped_with_creds(hotswapfs_creds(dentry->d_sb))
		cred = prepare_creds();
	if (!cred)
		return ERR_PTR(-ENOMEM);
	cred->fsuid = caller->fsuid;
	cred->fsgid = caller->fsgid;
	err = security_dentry_create_files_as(dentry, mode, &dentry->d_name, caller, cred);
	if (err) {
		put_cred(cred);
		return ERR_PTR(err);
	}
	return cred;
}

/* Gives the upper @dentry the inode of its (now positive) lower dentry. */
static int hotswapfs_instantiate(struct dentry *dentry, struct dentry *lower)
{
	struct inode *inode = hotswapfs_iget(dentry->d_sb, d_inode(lower));

	if (IS_ERR(inode))
		return PTR_ERR(inode);
	d_instantiate(dentry, inode);
	return 0;
}

static void hotswapfs_copy_dir(struct inode *dir)
{
	struct inode *lower = hotswapfs_lower_inode(dir);

	fsstack_copy_attr_times(dir, lower);
	fsstack_copy_inode_size(dir, lower);
	set_nlink(dir, lower->i_nlink);
}

static struct dentry *hotswapfs_lookup(struct inode *dir, struct dentry *dentry,
				       unsigned int flags)
{
	struct dentry *lower_parent = hotswapfs_lower_dentry(dentry->d_parent);
	/* The lower filesystem hashes the name its own way. */
	struct qstr name = QSTR_INIT(dentry->d_name.name, dentry->d_name.len);
	struct dentry *lower;
	struct inode *inode, *linode;

	scoped_with_creds(hotswapfs_creds(dir->i_sb))
		lower = lookup_noperm_unlocked(&name, lower_parent);
	if (IS_ERR(lower))
		return ERR_CAST(lower);
	dentry->d_fsdata = lower;
	/* Read once: the lower parent is not locked, it may go positive. */
	linode = READ_ONCE(lower->d_inode);
	if (!linode)
		return d_splice_alias(NULL, dentry);
	inode = hotswapfs_iget(dir->i_sb, linode);
	if (IS_ERR(inode))
		return ERR_CAST(inode);
	return d_splice_alias(inode, dentry);
}


/* A lower directory operation in progress: see hotswapfs_start_dirop. */
struct hotswapfs_dirop {
	struct vfsmount *mnt;
	/* The upper parent, referenced. */
	struct dentry *parent;
	/* The lower child, referenced, its parent locked (end_dirop). */
	struct dentry *lower;
	struct inode *lower_dir;
	/* The credentials the lower operation runs with. */
	const struct cred *cred;
	/* Owner credentials made for a create, put at the end. */
	struct cred *owner;
};

/*
 * Locks the lower parent of @dentry for creating (@create) or removing its
 * lower dentry, checking that the lower tree still matches (EEXIST,
 * ENOENT, EINVAL if it changed behind the mount), with write access to
 * the lower mount; a create gets the caller as the new file's owner.
 */
static int hotswapfs_start_dirop(struct hotswapfs_dirop *op, struct dentry *dentry,
				 bool create, umode_t mode)
{
	struct dentry *lower_parent, *lower;
	int err;

	op->mnt = hotswapfs_sb(dentry->d_sb)->lower_mnt;
	op->cred = hotswapfs_creds(dentry->d_sb);
	op->owner = NULL;
	if (create) {
		op->owner = hotswapfs_owner_creds(dentry, mode);
		if (IS_ERR(op->owner))
			return PTR_ERR(op->owner);
		op->cred = op->owner;
	}
	err = mnt_want_write(op->mnt);
	if (err)
		goto out_cred;
	op->parent = dget_parent(dentry);
	lower_parent = hotswapfs_lower_dentry(op->parent);
	if (create)
		lower = start_creating_dentry(lower_parent, hotswapfs_lower_dentry(dentry));
	else
		lower = start_removing_dentry(lower_parent, hotswapfs_lower_dentry(dentry));
	if (IS_ERR(lower)) {
		err = PTR_ERR(lower);
		dput(op->parent);
		mnt_drop_write(op->mnt);
		goto out_cred;
	}
	op->lower = lower;
	op->lower_dir = d_inode(lower_parent);
	return 0;
out_cred:
	if (op->owner)
		put_cred(op->owner);
	return err;
}

/*
 * Ends @op (the lower operation returned @err); a create that made a
 * lower file gives @dentry its inode. Returns the operation's result.
 */
static int hotswapfs_end_dirop(struct hotswapfs_dirop *op, struct dentry *dentry, int err)
{
	if (!err && op->owner) {
		if (!IS_ERR(op->lower) && d_really_is_positive(op->lower) &&
		    !d_unhashed(op->lower))
			err = hotswapfs_instantiate(dentry, op->lower);
		else
			d_drop(dentry);
	}
	if (!err)
		hotswapfs_copy_dir(d_inode(op->parent));
	end_dirop(op->lower);
	dput(op->parent);
	mnt_drop_write(op->mnt);
	if (op->owner)
		put_cred(op->owner);
	return err;
}

static int hotswapfs_create(struct mnt_idmap *idmap, struct inode *dir,
			    struct dentry *dentry, umode_t mode)
{
	struct hotswapfs_dirop op;
	int err = hotswapfs_start_dirop(&op, dentry, true, mode);

	if (err)
		return err;
	scoped_with_creds(op.cred)
		err = vfs_create(&nop_mnt_idmap, op.lower, mode, NULL);
	return hotswapfs_end_dirop(&op, dentry, err);
}

static int hotswapfs_mknod(struct mnt_idmap *idmap, struct inode *dir,
			   struct dentry *dentry, umode_t mode, dev_t dev)
{
	struct hotswapfs_dirop op;
	int err = hotswapfs_start_dirop(&op, dentry, true, mode);

	if (err)
		return err;
	scoped_with_creds(op.cred)
		err = vfs_mknod(&nop_mnt_idmap, op.lower_dir, op.lower, mode, dev, NULL);
	return hotswapfs_end_dirop(&op, dentry, err);
}

static int hotswapfs_symlink(struct mnt_idmap *idmap, struct inode *dir,
			     struct dentry *dentry, const char *target)
{
	struct hotswapfs_dirop op;
	int err = hotswapfs_start_dirop(&op, dentry, true, S_IFLNK | 0777);

	if (err)
		return err;
	scoped_with_creds(op.cred)
		err = vfs_symlink(&nop_mnt_idmap, op.lower_dir, op.lower, target, NULL);
	return hotswapfs_end_dirop(&op, dentry, err);
}

static struct dentry *hotswapfs_mkdir(struct mnt_idmap *idmap, struct inode *dir,
				      struct dentry *dentry, umode_t mode)
{
	struct hotswapfs_dirop op;
	struct dentry *made;
	int err = hotswapfs_start_dirop(&op, dentry, true, mode | S_IFDIR);

	if (err)
		return ERR_PTR(err);
	scoped_with_creds(op.cred)
		made = vfs_mkdir(&nop_mnt_idmap, op.lower_dir, op.lower, mode, NULL);
	/*
	 * vfs_mkdir ended the operation if it failed. Else it may have made
	 * the directory under another lower dentry (NFS, CIFS): the upper
	 * dentry's d_fsdata is not swapped under a concurrent revalidate;
	 * it is dropped, and the next lookup finds the directory.
	 */
	if (IS_ERR(made) || made != op.lower) {
		if (!IS_ERR(made)) {
			d_drop(dentry);
			hotswapfs_copy_dir(d_inode(op.parent));
			end_dirop(made);
		}
		dput(op.parent);
		mnt_drop_write(op.mnt);
		put_cred(op.owner);
		return IS_ERR(made) ? ERR_CAST(made) : NULL;
	}
	return ERR_PTR(hotswapfs_end_dirop(&op, dentry, 0));
}

static int hotswapfs_link(struct dentry *old, struct inode *dir, struct dentry *new)
{
	struct dentry *lower_old = hotswapfs_lower_dentry(old);
	struct hotswapfs_dirop op;
	int err = hotswapfs_start_dirop(&op, new, true, d_inode(old)->i_mode);

	if (err)
		return err;
	scoped_with_creds(op.cred)
		err = vfs_link(lower_old, &nop_mnt_idmap, op.lower_dir, op.lower, NULL);
	err = hotswapfs_end_dirop(&op, new, err);
	if (!err)
		set_nlink(d_inode(old), hotswapfs_lower_inode(d_inode(old))->i_nlink);
	return err;
}

/* unlink and rmdir: the lower name goes, then the upper one. */
static int hotswapfs_remove(struct inode *dir, struct dentry *dentry, bool is_dir)
{
	struct inode *inode = d_inode(dentry);
	struct hotswapfs_dirop op;
	int err = hotswapfs_start_dirop(&op, dentry, false, 0);

	if (err)
		return err;
	scoped_with_creds(op.cred) {
		if (is_dir)
			err = vfs_rmdir(&nop_mnt_idmap, op.lower_dir, op.lower, NULL);
		else
			err = vfs_unlink(&nop_mnt_idmap, op.lower_dir, op.lower, NULL);
	}
	if (!err) {
		if (is_dir)
			clear_nlink(inode);
		else
			set_nlink(inode, hotswapfs_lower_inode(inode)->i_nlink);
		inode_set_ctime_to_ts(inode, inode_get_ctime(hotswapfs_lower_inode(inode)));
	}
	err = hotswapfs_end_dirop(&op, dentry, err);
	if (!err)
		d_drop(dentry);
	return err;
}

static int hotswapfs_unlink(struct inode *dir, struct dentry *dentry)
{
	return hotswapfs_remove(dir, dentry, false);
}

static int hotswapfs_rmdir(struct inode *dir, struct dentry *dentry)
{
	return hotswapfs_remove(dir, dentry, true);
}

static int hotswapfs_rename(struct mnt_idmap *idmap, struct inode *old_dir,
			    struct dentry *old, struct inode *new_dir,
			    struct dentry *new, unsigned int flags)
{
	struct vfsmount *mnt = hotswapfs_sb(old->d_sb)->lower_mnt;
	struct inode *target = d_inode(new);
	struct renamedata rd = {
		.mnt_idmap = &nop_mnt_idmap,
		.old_parent = hotswapfs_lower_dentry(old->d_parent),
		.new_parent = hotswapfs_lower_dentry(new->d_parent),
		.flags = flags,
	};
	int err;

	/* Whiteouts are overlayfs's business. */
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	err = mnt_want_write(mnt);
	if (err)
		return err;
	err = start_renaming_two_dentries(&rd, hotswapfs_lower_dentry(old),
					  hotswapfs_lower_dentry(new));
	if (!err) {
		scoped_with_creds(hotswapfs_creds(old->d_sb))
			err = vfs_rename(&rd);
		if (!err) {
			if (target)
				hotswapfs_refresh(target);
			hotswapfs_copy_dir(new_dir);
			if (new_dir != old_dir)
				hotswapfs_copy_dir(old_dir);
		}
		end_renaming(&rd);
	}
	mnt_drop_write(mnt);
	return err;
}

static const char *hotswapfs_get_link(struct dentry *dentry, struct inode *inode,
				      struct delayed_call *done)
{
	const char *link;

	/* vfs_get_link may sleep: not in an RCU walk. */
	if (!dentry)
		return ERR_PTR(-ECHILD);
	scoped_with_creds(hotswapfs_creds(dentry->d_sb))
		link = vfs_get_link(hotswapfs_lower_dentry(dentry), done);
	return link;
}

/*
 * The lower inode decides, for the caller (its mode, its ACLs, the lower
 * filesystem's own rules) and then for the mounter, whose credentials
 * every lower operation runs with: the mount lends no one more than
 * either may do.
 */
static int hotswapfs_permission(struct mnt_idmap *idmap, struct inode *inode, int mask)
{
	struct inode *lower = hotswapfs_lower_inode(inode);
	int err = inode_permission(&nop_mnt_idmap, lower, mask);

	if (err)
		return err;
	scoped_with_creds(hotswapfs_creds(inode->i_sb))
		err = inode_permission(&nop_mnt_idmap, lower, mask);
	return err;
}

static int hotswapfs_getattr(struct mnt_idmap *idmap, const struct path *path,
			     struct kstat *stat, u32 mask, unsigned int flags)
{
	struct inode *inode = d_inode(path->dentry);
	struct inode *lower = hotswapfs_lower_inode(inode);
	struct timespec64 mtime, ctime;
	bool revalidated = false;
	struct path lower_path;
	loff_t size;
	int err;

	hotswapfs_refresh(inode);
	hotswapfs_lower_path(path->dentry, &lower_path);
	scoped_with_creds(hotswapfs_creds(inode->i_sb))
		err = vfs_getattr_nosec(&lower_path, stat, mask, flags);
	if (err)
		return err;
	stat->dev = inode->i_sb->s_dev;
	if (!S_ISREG(inode->i_mode))
		return 0;
	/*
	 * While an FCM caches the file, its size and times are the FCM's:
	 * the lower inode learns them at write-back.
	 */
	err = hotswap_fcm_inode_size(lower, &size, &revalidated);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	stat->size = size;
	if (revalidated) {
		/* The file changed behind the FCM: its size may have shrunk. */
		spin_lock(&inode->i_lock);
		i_size_write(inode, size);
		spin_unlock(&inode->i_lock);
	}
	mtime = inode_get_mtime(inode);
	ctime = inode_get_ctime(inode);
	if (timespec64_compare(&mtime, &stat->mtime) > 0)
		stat->mtime = mtime;
	if (timespec64_compare(&ctime, &stat->ctime) > 0)
		stat->ctime = ctime;
	stat->result_mask &= ~STATX_CHANGE_COOKIE;
	return 0;
}

/*
 * chmod, chown, utimes and truncate. A size goes through the file's FCM
 * if it has one (which truncates the lower file and drops or zeroes what
 * it caches past the new end), else straight to the lower inode.
 */
static int hotswapfs_setattr(struct mnt_idmap *idmap, struct dentry *dentry,
			     struct iattr *attr)
{
	struct inode *inode = d_inode(dentry);
	struct dentry *lower = hotswapfs_lower_dentry(dentry);
	struct inode *linode = d_inode(lower);
	struct vfsmount *mnt = hotswapfs_sb(dentry->d_sb)->lower_mnt;
	struct path lower_path;
	struct iattr lattr;
	loff_t size;
	int err;

	/* Judged by the owner and mode the lower inode has now. */
	hotswapfs_refresh(inode);
	err = setattr_prepare(&nop_mnt_idmap, dentry, attr);
	if (err)
		return err;
	lattr = *attr;
	/* The upper file is not the lower one's. */
	lattr.ia_valid &= ~(ATTR_FILE | ATTR_OPEN);
	lattr.ia_file = NULL;
	/* The lower filesystem works out the mode itself (overlayfs). */
	if (lattr.ia_valid & (ATTR_KILL_SUID | ATTR_KILL_SGID))
		lattr.ia_valid &= ~ATTR_MODE;

	/*
	 * Write access to the lower mount only around notify_change:
	 * vfs_truncate and the FCM's write-back take it themselves, and a
	 * second hold behind a waiting freezer never comes.
	 */
	if ((lattr.ia_valid & ATTR_SIZE) && S_ISREG(inode->i_mode)) {
		scoped_with_creds(hotswapfs_creds(dentry->d_sb))
			err = hotswap_fcm_inode_truncate(linode, lattr.ia_size);
		if (err == -ENOENT) {
			/*
			 * No FCM: the lower truncate's own checks apply
			 * (append-only, a program running from it: ETXTBSY,
			 * leases), which notify_change alone skips.
			 */
			hotswapfs_lower_path(dentry, &lower_path);
			scoped_with_creds(hotswapfs_creds(dentry->d_sb))
				err = vfs_truncate(&lower_path, lattr.ia_size);
		}
		if (err)
			goto out;
		/*
		 * The FCM unmapped the pages it freed; private copies of
		 * them past the end go too, as on any filesystem.
		 */
		if (lattr.ia_size < i_size_read(inode)) {
			i_size_write(inode, lattr.ia_size);
			truncate_pagecache(inode, lattr.ia_size);
		}
		lattr.ia_valid &= ~ATTR_SIZE;
	}
	/* Times set now must not be overwritten by the write-back of data
	 * written before. */
	if ((lattr.ia_valid & (ATTR_MTIME_SET | ATTR_ATIME_SET)) && S_ISREG(inode->i_mode)) {
		err = hotswap_fcm_inode_write_back(linode);
		if (err && err != -ENOENT)
			goto out;
		err = 0;
	}
	if (lattr.ia_valid) {
		if (S_ISREG(inode->i_mode))
			hotswap_fcm_inode_revalidate(linode);
		err = mnt_want_write(mnt);
		if (err)
			return err;
		inode_lock(linode);
		scoped_with_creds(hotswapfs_creds(dentry->d_sb))
			err = notify_change(&nop_mnt_idmap, lower, &lattr, NULL);
		inode_unlock(linode);
		mnt_drop_write(mnt);
		if (err)
			return err;
		if (S_ISREG(inode->i_mode))
			hotswap_fcm_inode_settled(linode);
	}
	hotswapfs_refresh(inode);
	fsstack_copy_attr_times(inode, linode);
	if (S_ISREG(inode->i_mode) && !hotswap_fcm_inode_size(linode, &size, NULL))
		i_size_write(inode, size);
	else
		fsstack_copy_inode_size(inode, linode);
	return 0;
out:
	return err;
}

/*
 * The lower inode's names, as the caller may list them: the lower
 * filesystem lists trusted.* by the credentials it runs with, the
 * mounter's, so those go unless the caller could list them itself
 * (overlayfs's rule).
 */
static ssize_t hotswapfs_listxattr(struct dentry *dentry, char *list, size_t size)
{
	ssize_t n, kept = 0;
	size_t len;
	char *name;

	scoped_with_creds(hotswapfs_creds(dentry->d_sb))
		n = vfs_listxattr(hotswapfs_lower_dentry(dentry), list, size);
	if (n <= 0 || !size || capable(CAP_SYS_ADMIN))
		return n;
	for (name = list; name < list + n; name += len) {
		/* A list not NUL-terminated ends at its last byte. */
		len = min_t(size_t, strnlen(name, list + n - name) + 1, list + n - name);
		if (!strncmp(name, XATTR_TRUSTED_PREFIX, XATTR_TRUSTED_PREFIX_LEN))
			continue;
		memmove(list + kept, name, len);
		kept += len;
	}
	return kept;
}

#ifdef CONFIG_FS_POSIX_ACL
/* What the upper inode's ACL checks see: the lower inode's ACLs. */
static struct posix_acl *hotswapfs_get_inode_acl(struct inode *inode, int type, bool rcu)
{
	struct inode *lower = hotswapfs_lower_inode(inode);

	if (rcu)
		return get_cached_acl_rcu(lower, type);
	return get_inode_acl(lower, type);
}
#else
#define hotswapfs_get_inode_acl NULL
#endif

const struct inode_operations hotswapfs_dir_iops = {
	.lookup = hotswapfs_lookup,
	.create = hotswapfs_create,
	.link = hotswapfs_link,
	.unlink = hotswapfs_unlink,
	.symlink = hotswapfs_symlink,
	.mkdir = hotswapfs_mkdir,
	.rmdir = hotswapfs_rmdir,
	.mknod = hotswapfs_mknod,
	.rename = hotswapfs_rename,
	.permission = hotswapfs_permission,
	.getattr = hotswapfs_getattr,
	.setattr = hotswapfs_setattr,
	.listxattr = hotswapfs_listxattr,
	.get_inode_acl = hotswapfs_get_inode_acl,
};

const struct inode_operations hotswapfs_file_iops = {
	.permission = hotswapfs_permission,
	.getattr = hotswapfs_getattr,
	.setattr = hotswapfs_setattr,
	.listxattr = hotswapfs_listxattr,
	.get_inode_acl = hotswapfs_get_inode_acl,
};

const struct inode_operations hotswapfs_symlink_iops = {
	.get_link = hotswapfs_get_link,
	.permission = hotswapfs_permission,
	.getattr = hotswapfs_getattr,
	.setattr = hotswapfs_setattr,
	.listxattr = hotswapfs_listxattr,
};

const struct inode_operations hotswapfs_special_iops = {
	.permission = hotswapfs_permission,
	.getattr = hotswapfs_getattr,
	.setattr = hotswapfs_setattr,
	.listxattr = hotswapfs_listxattr,
	.get_inode_acl = hotswapfs_get_inode_acl,
};

/*
 * Whether the upper dentry still names what its lower dentry names: not
 * if the lower one was removed, renamed or moved to another directory,
 * made positive or negative, or points at another inode behind the
 * mount. RCU-safe (a rename racing the check asks for a ref-walk) unless
 * the lower filesystem revalidates its own dentries. A positive dentry's
 * inode takes the lower inode's owner, mode and flags again.
 */
static int hotswapfs_d_revalidate(struct inode *dir, const struct qstr *name,
				  struct dentry *dentry, unsigned int flags)
{
	struct dentry *lower = hotswapfs_lower_dentry(dentry);
	struct dentry *lower_parent = hotswapfs_lower_dentry(READ_ONCE(dentry->d_parent));
	struct inode *inode, *linode;
	unsigned int seq;
	bool same;
	int valid = 1;

	if (READ_ONCE(lower->d_flags) & DCACHE_OP_REVALIDATE) {
		struct name_snapshot n;

		if (flags & LOOKUP_RCU)
			return -ECHILD;
		take_dentry_name_snapshot(&n, lower);
		valid = lower->d_op->d_revalidate(hotswapfs_lower_inode(dir), &n.name,
						  lower, flags);
		release_dentry_name_snapshot(&n);
		if (valid <= 0)
			return valid;
	}
	/*
	 * Under RCU in either walk: a rename may free the lower dentry's
	 * old (external) name meanwhile. d_same_name compares the way the
	 * lower filesystem does (case-insensitive ones too).
	 */
	rcu_read_lock();
	seq = raw_seqcount_begin(&lower->d_seq);
	same = READ_ONCE(lower->d_parent) == lower_parent &&
	       d_same_name(lower, lower_parent, name);
	rcu_read_unlock();
	if ((flags & LOOKUP_RCU) && read_seqcount_retry(&lower->d_seq, seq))
		return -ECHILD;
	if (!same || d_unhashed(lower))
		return 0;
	inode = d_inode_rcu(dentry);
	linode = d_inode_rcu(lower);
	if (!inode != !linode)
		return 0;
	if (inode && hotswapfs_lower_inode(inode) != linode)
		return 0;
	if (inode)
		hotswapfs_refresh(inode);
	return valid;
}

static void hotswapfs_d_release(struct dentry *dentry)
{
	dput(dentry->d_fsdata);
}

const struct dentry_operations hotswapfs_dops = {
	.d_revalidate = hotswapfs_d_revalidate,
	.d_release = hotswapfs_d_release,
};

/*
 * Every extended attribute is the lower inode's (the caller was checked
 * against the upper one by the VFS); ACLs are not set through the mount
 * (no set_acl: EOPNOTSUPP), only read and enforced.
 */
static int hotswapfs_xattr_get(const struct xattr_handler *handler, struct dentry *dentry,
			       struct inode *inode, const char *name, void *buf, size_t size)
{
	ssize_t n;

	scoped_with_creds(hotswapfs_creds(inode->i_sb))
		n = vfs_getxattr(&nop_mnt_idmap, hotswapfs_lower_dentry(dentry), name, buf, size);
	return n;
}

static int hotswapfs_xattr_set(const struct xattr_handler *handler, struct mnt_idmap *idmap,
			       struct dentry *dentry, struct inode *inode, const char *name,
			       const void *value, size_t size, int flags)
{
	struct vfsmount *mnt = hotswapfs_sb(inode->i_sb)->lower_mnt;
	struct dentry *lower = hotswapfs_lower_dentry(dentry);
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	scoped_with_creds(hotswapfs_creds(inode->i_sb)) {
		if (value)
			err = vfs_setxattr(&nop_mnt_idmap, lower, name, value, size, flags);
		else
			err = vfs_removexattr(&nop_mnt_idmap, lower, name);
	}
	mnt_drop_write(mnt);
	if (!err) {
		hotswapfs_refresh(inode);
		/* A security.capability now, maybe: privileges to drop again. */
		inode_set_flags(inode, 0, S_NOSEC);
	}
	return err;
}

static const struct xattr_handler hotswapfs_xattr_handler = {
	.prefix = "",
	.get = hotswapfs_xattr_get,
	.set = hotswapfs_xattr_set,
};

const struct xattr_handler * const hotswapfs_xattr_handlers[] = {
	&hotswapfs_xattr_handler,
	NULL
};
