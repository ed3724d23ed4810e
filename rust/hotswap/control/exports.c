// SPDX-License-Identifier: GPL-2.0
/*
 * Exports the Rust entry points of hotswap.ko (defined in entry.rs) to
 * other modules. The prototypes mirror api.rs; the C side never calls them.
 */
#include <linux/export.h>
#include <linux/types.h>

struct hotswap_interface_ops;
struct hotswap_impl_ops;
struct hotswap_call;
struct hotswap_swap_report;

int hotswap_register_interface(const struct hotswap_interface_ops *ops);
int hotswap_unregister_interface(const struct hotswap_interface_ops *ops);
int hotswap_retire_interface(const struct hotswap_interface_ops *ops);
int hotswap_register_impl(const struct hotswap_impl_ops *ops);
int hotswap_unregister_impl(const struct hotswap_impl_ops *ops);
int hotswap_retire_impl(const struct hotswap_impl_ops *ops);
int hotswap_find_impl(const char *interface, const char *name);
int hotswap_object_create(const char *interface, u32 methods_version, u32 methods_size,
			  const char *name, const void *arg, const void **slot);
int hotswap_object_destroy(const void *slot);
u32 hotswap_object_id(const void *slot);
void hotswap_object_misbehaved(const void *slot, const char *what);
void hotswap_object_set_label(const void *slot, const char *label);
void hotswap_call_misbehaved(const struct hotswap_call *call, const char *what);
int hotswap_call_begin(const void *slot, struct hotswap_call *call);
int hotswap_call_try_begin(const void *slot, struct hotswap_call *call);
int hotswap_call_next(const struct hotswap_call *call, struct hotswap_call *next);
void hotswap_call_end(struct hotswap_call *call);
int hotswap_object_swap(const void *slot, const char *name, u32 timeout_ms,
			struct hotswap_swap_report *report);
int hotswap_swap_all(const char *interface, const char *name, u32 timeout_ms,
		     u32 *completed, u32 *aborted);
int hotswap_object_interpose(const void *slot, const char *name);
int hotswap_object_uninterpose(const void *slot, const char *name);
u32 hotswap_object_phase(const void *slot);
int hotswap_object_set_timeout(const void *slot, u32 timeout_ms);
int hotswap_register_policy(const void *ops);
int hotswap_unregister_policy(const void *ops);
void hotswap_policy_sample(const void *slot, const u64 *sample, u32 n);

EXPORT_SYMBOL_GPL(hotswap_register_interface);
EXPORT_SYMBOL_GPL(hotswap_unregister_interface);
EXPORT_SYMBOL_GPL(hotswap_retire_interface);
EXPORT_SYMBOL_GPL(hotswap_register_impl);
EXPORT_SYMBOL_GPL(hotswap_unregister_impl);
EXPORT_SYMBOL_GPL(hotswap_retire_impl);
EXPORT_SYMBOL_GPL(hotswap_find_impl);
EXPORT_SYMBOL_GPL(hotswap_object_create);
EXPORT_SYMBOL_GPL(hotswap_object_destroy);
EXPORT_SYMBOL_GPL(hotswap_object_id);
EXPORT_SYMBOL_GPL(hotswap_object_misbehaved);
EXPORT_SYMBOL_GPL(hotswap_object_set_label);
EXPORT_SYMBOL_GPL(hotswap_call_misbehaved);
EXPORT_SYMBOL_GPL(hotswap_call_begin);
EXPORT_SYMBOL_GPL(hotswap_call_try_begin);
EXPORT_SYMBOL_GPL(hotswap_call_next);
EXPORT_SYMBOL_GPL(hotswap_call_end);
EXPORT_SYMBOL_GPL(hotswap_object_swap);
EXPORT_SYMBOL_GPL(hotswap_swap_all);
EXPORT_SYMBOL_GPL(hotswap_object_interpose);
EXPORT_SYMBOL_GPL(hotswap_object_uninterpose);
EXPORT_SYMBOL_GPL(hotswap_object_phase);
EXPORT_SYMBOL_GPL(hotswap_object_set_timeout);
EXPORT_SYMBOL_GPL(hotswap_register_policy);
EXPORT_SYMBOL_GPL(hotswap_unregister_policy);
EXPORT_SYMBOL_GPL(hotswap_policy_sample);
