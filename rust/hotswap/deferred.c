// SPDX-License-Identifier: GPL-2.0
/*
 * hotswap.ko's own workqueue for deferred work (alloc_workqueue is a
 * macro, with no Rust binding): the autonomic policy's swaps, and the last
 * write-back of a cached file whose closer could not finish it. deferred.rs
 * destroys it at unload, which first waits for everything queued: a work
 * item on a system queue would hold no reference to the module and could
 * run after it is gone.
 */
#include <linux/workqueue.h>

struct workqueue_struct *hotswap_deferred_queue_alloc(void);

struct workqueue_struct *hotswap_deferred_queue_alloc(void)
{
	return alloc_workqueue("hotswap", WQ_UNBOUND, 0);
}
