// SPDX-License-Identifier: GPL-2.0
/*
 * A workqueue for a module's deferred work (rust/kit/deferred.rs):
 * alloc_workqueue is a macro, with no Rust binding. Exported so that every
 * module that compiles deferred.rs in gets a queue of its own, which it
 * destroys (after running what is queued) when it unloads.
 */
#include <linux/export.h>
#include <linux/workqueue.h>

struct workqueue_struct *hotswap_workqueue_alloc(const char *name);
void hotswap_workqueue_free(struct workqueue_struct *queue);
void hotswap_workqueue_flush(struct workqueue_struct *queue);

struct workqueue_struct *hotswap_workqueue_alloc(const char *name)
{
	return alloc_workqueue("%s", WQ_UNBOUND, 0, name);
}
EXPORT_SYMBOL_GPL(hotswap_workqueue_alloc);

/* Runs everything queued, then frees the queue. */
void hotswap_workqueue_free(struct workqueue_struct *queue)
{
	destroy_workqueue(queue);
}
EXPORT_SYMBOL_GPL(hotswap_workqueue_free);

/* Waits for everything queued before the call to have run. */
void hotswap_workqueue_flush(struct workqueue_struct *queue)
{
	flush_workqueue(queue);
}
EXPORT_SYMBOL_GPL(hotswap_workqueue_flush);
