// SPDX-License-Identifier: GPL-2.0
/*
 * Exports the Rust entry points of hotswap.ko (defined in entry.rs) to
 * other modules. The prototypes mirror api.rs; the C side never calls them.
 */
#include <linux/export.h>

struct hotswap_interface_ops;
struct hotswap_impl_ops;

int hotswap_register_interface(const struct hotswap_interface_ops *ops);
int hotswap_unregister_interface(const struct hotswap_interface_ops *ops);
int hotswap_register_impl(const struct hotswap_impl_ops *ops);
int hotswap_unregister_impl(const struct hotswap_impl_ops *ops);
int hotswap_find_impl(const char *interface, const char *name);

EXPORT_SYMBOL_GPL(hotswap_register_interface);
EXPORT_SYMBOL_GPL(hotswap_unregister_interface);
EXPORT_SYMBOL_GPL(hotswap_register_impl);
EXPORT_SYMBOL_GPL(hotswap_unregister_impl);
EXPORT_SYMBOL_GPL(hotswap_find_impl);
