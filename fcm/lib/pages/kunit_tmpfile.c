// SPDX-License-Identifier: GPL-2.0
/*
 * Support for the KUnit suites of FCM implementations: a real, unlinked
 * tmpfs file to cache. Test threads are kernel threads with no path to the
 * VM's filesystems, and shmem_file_setup() has no Rust binding.
 */
#include <linux/export.h>
#include <linux/shmem_fs.h>

struct file *hotswap_kunit_tmpfile(const char *name);

struct file *hotswap_kunit_tmpfile(const char *name)
{
	return shmem_file_setup(name, 0, EMPTY_VMA_FLAGS);
}
EXPORT_SYMBOL_GPL(hotswap_kunit_tmpfile);
