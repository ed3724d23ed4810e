// SPDX-License-Identifier: GPL-2.0
/*
 * FCM pages mapped into user address spaces (hotswapfs's mmap).
 *
 * A fault on a hotswapfs mapping maps the FCM's own page: no copy, and
 * every later write through the FCM lands in the very page the mapping
 * shows. The page must then be unmapped before the FCM frees it
 * (eviction, truncation, reclaim, a revalidation after a change behind
 * the mount); a swap moves pages between FCMs without freeing them, so
 * the mappings stay valid across it.
 *
 * Who maps a page: each cached inode has a struct hotswap_fcm_maps, the
 * address spaces (upper inodes, one per hotswapfs mount over the lower
 * inode) whose files were mmapped. The first time a fault maps a page,
 * the FCM, under its lock, marks it: page->private points to the maps
 * (which the page then holds a reference to) and page->index is its
 * index in the file. Freeing a marked page that anything else still
 * holds (a PTE takes a reference, and so does a fault between the FCM
 * lending the page and mapping it):
 *
 *   1. lock the page, clear the mark, unlock: a fault that got the page
 *      but has not mapped it yet sees the mark gone under the same lock,
 *      lets go of it and faults again, reaching the FCM's new page;
 *   2. unmap that index from every address space of the maps: a fault
 *      that mapped it did so holding the page lock, so before step 1.
 *
 * A page nothing else holds (page_count 1) is simply freed: a new
 * reference could only come from the FCM, whose lock the freeing caller
 * holds. Memory reclaim frees only such pages (hotswap_fcm_page_busy),
 * so it never sleeps on an address space's lock.
 *
 * Lock order: mmap_lock (the fault), the FCM's lock, the page lock
 * (never held while taking the next), maps->lock, i_mmap_rwsem.
 */
#include <linux/export.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/pagemap.h>
#include <linux/refcount.h>
#include <linux/slab.h>

struct hotswap_fcm_maps {
	refcount_t ref;
	/* Guards `spaces`; held while unmapping through them. */
	struct mutex lock;
	struct list_head spaces;
};

/* One address space that maps the inode's pages. */
struct hotswap_fcm_space {
	struct list_head link;
	struct address_space *mapping;
};

void *hotswap_fcm_maps_new(void);
void *hotswap_fcm_maps_new(void)
{
	struct hotswap_fcm_maps *maps = kzalloc(sizeof(*maps), GFP_KERNEL);

	if (!maps)
		return NULL;
	refcount_set(&maps->ref, 1);
	mutex_init(&maps->lock);
	INIT_LIST_HEAD(&maps->spaces);
	return maps;
}
/* Exported for the FCMs' conformance suites, which lend pages themselves. */
EXPORT_SYMBOL_GPL(hotswap_fcm_maps_new);

void hotswap_fcm_maps_put(void *handle);
void hotswap_fcm_maps_put(void *handle)
{
	struct hotswap_fcm_maps *maps = handle;
	struct hotswap_fcm_space *space, *next;

	if (!maps || !refcount_dec_and_test(&maps->ref))
		return;
	/* Address spaces are taken out before their inodes go; just in case. */
	list_for_each_entry_safe(space, next, &maps->spaces, link)
		kfree(space);
	mutex_destroy(&maps->lock);
	kfree(maps);
}
EXPORT_SYMBOL_GPL(hotswap_fcm_maps_put);

/* Lists @mapping (once) among those that map @handle's pages. */
int hotswap_fcm_maps_add(void *handle, struct address_space *mapping);
int hotswap_fcm_maps_add(void *handle, struct address_space *mapping)
{
	struct hotswap_fcm_maps *maps = handle;
	struct hotswap_fcm_space *space, *fresh;

	fresh = kmalloc(sizeof(*fresh), GFP_KERNEL);
	if (!fresh)
		return -ENOMEM;
	fresh->mapping = mapping;
	mutex_lock(&maps->lock);
	list_for_each_entry(space, &maps->spaces, link) {
		if (space->mapping == mapping) {
			mutex_unlock(&maps->lock);
			kfree(fresh);
			return 0;
		}
	}
	list_add(&fresh->link, &maps->spaces);
	mutex_unlock(&maps->lock);
	return 0;
}

/* Takes @mapping off @handle's list (its inode is being evicted). */
void hotswap_fcm_maps_remove(void *handle, struct address_space *mapping);
void hotswap_fcm_maps_remove(void *handle, struct address_space *mapping)
{
	struct hotswap_fcm_maps *maps = handle;
	struct hotswap_fcm_space *space;

	mutex_lock(&maps->lock);
	list_for_each_entry(space, &maps->spaces, link) {
		if (space->mapping == mapping) {
			list_del(&space->link);
			kfree(space);
			break;
		}
	}
	mutex_unlock(&maps->lock);
}

/*
 * Lends @page, page @index of a file whose mappings @handle lists, to a
 * fault (a new reference, which becomes the PTE's). Called by the FCM
 * under its lock, so that freeing the page (under the same lock) sees
 * the mark.
 */
void hotswap_fcm_page_lend(struct page *page, u64 index, void *handle);
void hotswap_fcm_page_lend(struct page *page, u64 index, void *handle)
{
	struct hotswap_fcm_maps *maps = handle;

	if (!page_private(page)) {
		refcount_inc(&maps->ref);
		page_folio(page)->index = index;
		set_page_private(page, (unsigned long)maps);
	}
	get_page(page);
}
EXPORT_SYMBOL_GPL(hotswap_fcm_page_lend);

/*
 * Whether anything but its FCM holds @page (a mapping, a fault about to
 * map it, a get_user_pages of a mapping): memory reclaim leaves it be.
 */
bool hotswap_fcm_page_busy(struct page *page);
bool hotswap_fcm_page_busy(struct page *page)
{
	return page_count(page) > 1;
}
EXPORT_SYMBOL_GPL(hotswap_fcm_page_busy);

/*
 * Before the FCM lets go of @page: if it was ever lent to a fault, takes
 * the mark off and unmaps it wherever it may be mapped (see the top).
 */
void hotswap_fcm_page_unmap(struct page *page);
void hotswap_fcm_page_unmap(struct page *page)
{
	struct hotswap_fcm_maps *maps = (struct hotswap_fcm_maps *)page_private(page);
	struct hotswap_fcm_space *space;
	pgoff_t index;

	if (!maps)
		return;
	index = page_folio(page)->index;
	if (page_count(page) == 1) {
		set_page_private(page, 0);
	} else {
		lock_page(page);
		set_page_private(page, 0);
		unlock_page(page);
		mutex_lock(&maps->lock);
		list_for_each_entry(space, &maps->spaces, link)
			unmap_mapping_pages(space->mapping, index, 1, false);
		mutex_unlock(&maps->lock);
	}
	hotswap_fcm_maps_put(maps);
}

/*
 * A fault's check, holding the page lock: whether @page is still its
 * FCM's (else the fault lets go of it and faults again).
 */
bool hotswap_fcm_page_live(struct page *page);
bool hotswap_fcm_page_live(struct page *page)
{
	return page_private(page) != 0;
}
EXPORT_SYMBOL_GPL(hotswap_fcm_page_live);

/* A fault's reference given back (the conformance suites act as faults). */
void hotswap_fcm_page_return(struct page *page);
void hotswap_fcm_page_return(struct page *page)
{
	put_page(page);
}
EXPORT_SYMBOL_GPL(hotswap_fcm_page_return);
