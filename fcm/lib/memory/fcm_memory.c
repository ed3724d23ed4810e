// SPDX-License-Identifier: GPL-2.0
/*
 * Where every FCM page comes from and goes back to, so that FCM memory
 * behaves like page-cache memory (fcm_memory.rs has the policy):
 *
 *  - one count of all FCM pages against a global budget
 *    (hotswap_fcm.budget_pages, a quarter of RAM unless set; writable at
 *    run time in /sys/module/hotswap/parameters/): an allocation past it
 *    is refused, and the cached-file front end evicts before it gets there;
 *  - pages are charged to the memory cgroup of the task whose access
 *    brings them in (__GFP_ACCOUNT) and never invoke the OOM killer
 *    (__GFP_NORETRY): a page cache that cannot get a page evicts one of
 *    its own and tries again instead;
 *  - a shrinker gives clean pages back under memory pressure and to
 *    drop_caches; it only ever try-locks (reclaim can run inside an FCM
 *    that holds its lock while it allocates) and writes nothing back:
 *    dirty pages it finds wake a worker that writes them back;
 *  - the shrinker is memcg-aware, so a cgroup at its memory.max takes FCM
 *    pages back too (else the next allocation of anything in it, the
 *    backing filesystem's say, would find nothing to reclaim and invoke
 *    the cgroup's OOM killer). The kernel calls a memcg-aware shrinker
 *    for a cgroup only once an object of that cgroup sits on its
 *    list_lru; FCM pages are too many to list one by one, so each cached
 *    file puts one token per cgroup of its openers there (at most a few),
 *    allocated in, and charged to, that cgroup. A cgroup's reclaim then
 *    finds the FCMs its tasks use and frees their clean pages.
 *
 * The page functions are exported for the FCM modules (fcm_pages.rs).
 */
#include <linux/atomic.h>
#include <linux/cred.h>
#include <linux/export.h>
#include <linux/gfp.h>
#include <linux/list_lru.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched/signal.h>
#include <linux/shrinker.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/workqueue.h>

/* Least budget accepted (4 MiB): a few read or write segments of 256 KiB. */
#define HOTSWAP_FCM_MIN_BUDGET 1024UL

static atomic_long_t fcm_pages = ATOMIC_LONG_INIT(0);
static atomic_long_t fcm_refused = ATOMIC_LONG_INIT(0);
static atomic_long_t fcm_reclaimed_pressure = ATOMIC_LONG_INIT(0);
static atomic_long_t fcm_reclaimed_budget = ATOMIC_LONG_INIT(0);
static unsigned long fcm_budget_pages;

/* fcm_memory.rs; `owners` NULL: every FCM. */
long hotswap_fcm_shrink(unsigned long nr, const void *const *owners, size_t n);
u64 hotswap_fcm_count(const void *const *owners, size_t n);
void hotswap_fcm_background(void);

static void background_fn(struct work_struct *work)
{
	hotswap_fcm_background();
}
static DECLARE_WORK(background_work, background_fn);
static bool background_ready;

/* Asks the worker to write dirty pages back and trim FCMs to the budget. */
void hotswap_fcm_kick_background(void);
void hotswap_fcm_kick_background(void)
{
	if (READ_ONCE(background_ready))
		queue_work(system_dfl_wq, &background_work);
}

int hotswap_fcm_set_budget(unsigned long pages);
int hotswap_fcm_set_budget(unsigned long pages)
{
	if (pages < HOTSWAP_FCM_MIN_BUDGET || pages > totalram_pages())
		return -EINVAL;
	WRITE_ONCE(fcm_budget_pages, pages);
	/* Lowered below what is cached: trimmed in the background. */
	if (atomic_long_read(&fcm_pages) > pages)
		hotswap_fcm_kick_background();
	return 0;
}

static int budget_set(const char *val, const struct kernel_param *kp)
{
	unsigned long pages;
	int ret = kstrtoul(val, 0, &pages);

	return ret ? ret : hotswap_fcm_set_budget(pages);
}

static const struct kernel_param_ops budget_ops = {
	.set = budget_set,
	.get = param_get_ulong,
};
module_param_cb(budget_pages, &budget_ops, &fcm_budget_pages, 0644);
MODULE_PARM_DESC(budget_pages,
		 "Pages all File Cache Managers together may cache (default: a quarter of RAM)");

/*
 * The share of the budget (percent) the FCMs one user other than root
 * created may hold together: unprivileged users may use the cache, and
 * none of them may crowd the others out of it.
 */
static unsigned int fcm_user_percent = 50;

static int user_percent_set(const char *val, const struct kernel_param *kp)
{
	unsigned int pct;
	int ret = kstrtouint(val, 0, &pct);

	if (ret)
		return ret;
	if (pct < 1 || pct > 100)
		return -EINVAL;
	WRITE_ONCE(fcm_user_percent, pct);
	return 0;
}

static const struct kernel_param_ops user_percent_ops = {
	.set = user_percent_set,
	.get = param_get_uint,
};
module_param_cb(user_percent, &user_percent_ops, &fcm_user_percent, 0644);
MODULE_PARM_DESC(user_percent,
		 "Percent of the budget the FCMs one user other than root created may hold (1-100, default 50)");

/* The caller's uid, as the initial user namespace sees it. */
u32 hotswap_current_uid(void);
u32 hotswap_current_uid(void)
{
	return from_kuid_munged(&init_user_ns, current_uid());
}

struct page *hotswap_fcm_page_alloc(bool zero);
struct page *hotswap_fcm_page_alloc(bool zero)
{
	gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_NORETRY | __GFP_NOWARN;
	struct page *page;


	if (atomic_long_inc_return(&fcm_pages) > (long)READ_ONCE(fcm_budget_pages)) {
		atomic_long_dec(&fcm_pages);
		atomic_long_inc(&fcm_refused);
		return NULL;
	}
	page = alloc_pages(zero ? gfp | __GFP_ZERO : gfp, 0);
	if (!page)
		atomic_long_dec(&fcm_pages);
	return page;
}
EXPORT_SYMBOL_GPL(hotswap_fcm_page_alloc);

/* fcm_mapped.c: a page a fault mapped is unmapped before it goes. */
void hotswap_fcm_page_unmap(struct page *page);

void hotswap_fcm_page_free(struct page *page);
void hotswap_fcm_page_free(struct page *page)
{
	hotswap_fcm_page_unmap(page);
	/* A put: a get_user_pages of an old mapping may hold it a while. */
	__free_pages(page, 0);
	atomic_long_dec(&fcm_pages);
}
EXPORT_SYMBOL_GPL(hotswap_fcm_page_free);

/* The figures fcm_memory.rs reports; all in pages. */
struct hotswap_fcm_memory {
	u64 budget;
	u64 user_budget;
	u64 used;
	u64 refused;
	u64 reclaimed_pressure;
	u64 reclaimed_budget;
};

void hotswap_fcm_memory_read(struct hotswap_fcm_memory *out);
void hotswap_fcm_memory_read(struct hotswap_fcm_memory *out)
{
	out->budget = READ_ONCE(fcm_budget_pages);
	out->user_budget = out->budget * READ_ONCE(fcm_user_percent) / 100;
	out->used = max(atomic_long_read(&fcm_pages), 0L);
	out->refused = atomic_long_read(&fcm_refused);
	out->reclaimed_pressure = atomic_long_read(&fcm_reclaimed_pressure);
	out->reclaimed_budget = atomic_long_read(&fcm_reclaimed_budget);
}

void hotswap_fcm_count_reclaimed(bool pressure, unsigned long pages);
void hotswap_fcm_count_reclaimed(bool pressure, unsigned long pages)
{
	atomic_long_add(pages, pressure ? &fcm_reclaimed_pressure : &fcm_reclaimed_budget);
}

/* One cached file's entry on the list_lru, for one cgroup of its openers. */
struct hotswap_fcm_token {
	struct list_head lru;
	const void *owner;
	const void *memcg;
};

static struct kmem_cache *token_cache;
static struct list_lru fcm_lru;

/*
 * A token for `owner` (a cached file) in the current task's cgroup into
 * *out, or NULL there if none is needed (the root cgroup, or one of the
 * `n` in `have` is of that cgroup already); -ENOMEM if it cannot be had.
 */
int hotswap_fcm_token_new(const void *owner, void *const *have, size_t n, void **out);
int hotswap_fcm_token_new(const void *owner, void *const *have, size_t n, void **out)
{
	struct hotswap_fcm_token *t;
	const void *memcg;
	bool root;
	size_t i;

	*out = NULL;
	if (mem_cgroup_disabled())
		return 0;
	rcu_read_lock();
	memcg = mem_cgroup_from_task(current);
	root = !memcg || mem_cgroup_is_root((struct mem_cgroup *)memcg);
	rcu_read_unlock();
	/* The root cgroup's reclaim is global reclaim: it finds every FCM. */
	if (root)
		return 0;
	/* Compared, never followed: a stale match only costs a token. */
	for (i = 0; i < n; i++)
		if (((struct hotswap_fcm_token *)have[i])->memcg == memcg)
			return 0;
	/* Like an FCM page: at the cgroup's limit, fail rather than OOM. */
	t = kmem_cache_alloc_lru(token_cache, &fcm_lru,
				 GFP_KERNEL_ACCOUNT | __GFP_NORETRY | __GFP_NOWARN);
	if (!t)
		return -ENOMEM;
	INIT_LIST_HEAD(&t->lru);
	t->owner = owner;
	t->memcg = memcg;
	list_lru_add_obj(&fcm_lru, &t->lru);
	*out = t;
	return 0;
}

void hotswap_fcm_token_free(void *token);
void hotswap_fcm_token_free(void *token)
{
	struct hotswap_fcm_token *t = token;

	list_lru_del_obj(&fcm_lru, &t->lru);
	kmem_cache_free(token_cache, t);
}

#define SHRINK_OWNERS 16

struct owners {
	const void *owner[SHRINK_OWNERS];
	size_t n;
};

static enum lru_status collect_owner(struct list_head *item, struct list_lru_one *list,
				     void *arg)
{
	struct owners *o = arg;

	if (o->n == SHRINK_OWNERS)
		return LRU_STOP;
	o->owner[o->n++] = container_of(item, struct hotswap_fcm_token, lru)->owner;
	/* The next pass starts with other files of the cgroup. */
	return LRU_ROTATE;
}

/* The files a cgroup's tasks use (NULL: every file, for global reclaim). */
static bool cgroup_owners(struct shrink_control *sc, struct owners *o)
{
	unsigned long walk = SHRINK_OWNERS;

	o->n = 0;
	if (!sc->memcg || mem_cgroup_is_root(sc->memcg))
		return false;
	list_lru_walk_one(&fcm_lru, sc->nid, sc->memcg, collect_owner, o, &walk);
	return true;
}

static unsigned long shrink_count(struct shrinker *s, struct shrink_control *sc)
{
	struct owners o;
	long pages;

	if (!cgroup_owners(sc, &o)) {
		pages = atomic_long_read(&fcm_pages);
		return pages > 0 ? pages : SHRINK_EMPTY;
	}
	/*
	 * SHRINK_EMPTY clears the cgroup's bit for this shrinker, and only a
	 * token newly listed sets it again: while the cgroup has tokens, an
	 * FCM that is busy or empty right now counts 0 instead.
	 */
	if (!o.n)
		return SHRINK_EMPTY;
	return hotswap_fcm_count(o.owner, o.n);
}

static unsigned long shrink_scan(struct shrinker *s, struct shrink_control *sc)
{
	struct owners o;
	long freed;

	if (cgroup_owners(sc, &o))
		freed = o.n ? hotswap_fcm_shrink(sc->nr_to_scan, o.owner, o.n) : 0;
	else
		freed = hotswap_fcm_shrink(sc->nr_to_scan, NULL, 0);
	if (freed < 0)
		return SHRINK_STOP;
	atomic_long_add(freed, &fcm_reclaimed_pressure);
	/* Pages, not slab objects: reclaim counts them as the LRU's own. */
	mm_account_reclaimed_pages(freed);
	return freed;
}

static struct shrinker *fcm_shrinker;

int hotswap_fcm_memory_init(void);
int hotswap_fcm_memory_init(void)
{
	if (!fcm_budget_pages)
		fcm_budget_pages = max(totalram_pages() / 4, HOTSWAP_FCM_MIN_BUDGET);
	token_cache = KMEM_CACHE(hotswap_fcm_token, SLAB_ACCOUNT);
	if (!token_cache)
		return -ENOMEM;
	fcm_shrinker = shrinker_alloc(SHRINKER_MEMCG_AWARE, "hotswap-fcm");
	if (!fcm_shrinker) {
		kmem_cache_destroy(token_cache);
		return -ENOMEM;
	}
	if (list_lru_init_memcg(&fcm_lru, fcm_shrinker)) {
		shrinker_free(fcm_shrinker);
		kmem_cache_destroy(token_cache);
		return -ENOMEM;
	}
	fcm_shrinker->count_objects = shrink_count;
	fcm_shrinker->scan_objects = shrink_scan;
	/* Pages are dear to refill (a read from the backing file). */
	fcm_shrinker->seeks = DEFAULT_SEEKS;
	shrinker_register(fcm_shrinker);
	WRITE_ONCE(background_ready, true);
	return 0;
}

/* At unload, after the last FCM is gone. */
void hotswap_fcm_memory_exit(void);
void hotswap_fcm_memory_exit(void)
{
	/*
	 * A write of the parameter (sysfs takes no module reference) holds
	 * the parameter lock: after this, none queues the worker again.
	 */
	kernel_param_lock(THIS_MODULE);
	WRITE_ONCE(background_ready, false);
	kernel_param_unlock(THIS_MODULE);
	shrinker_free(fcm_shrinker);
	cancel_work_sync(&background_work);
	/* Every cached file, and so every token, is gone. */
	list_lru_destroy(&fcm_lru);
	kmem_cache_destroy(token_cache);
}

/* fatal_signal_pending() is inline, with no Rust binding. */
bool hotswap_fatal_signal_pending(void);
bool hotswap_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

/* The current task's memory cgroup, as an identity to compare (0: none). */
unsigned long hotswap_fcm_current_memcg(void);
unsigned long hotswap_fcm_current_memcg(void)
{
	unsigned long id;

	if (mem_cgroup_disabled())
		return 0;
	rcu_read_lock();
	id = (unsigned long)mem_cgroup_from_task(current);
	rcu_read_unlock();
	return id;
}

/* Sleeps `ms` unless killed; whether a fatal signal is pending. */
bool hotswap_fcm_wait_killable(unsigned int ms);
bool hotswap_fcm_wait_killable(unsigned int ms)
{
	schedule_timeout_killable(msecs_to_jiffies(ms));
	return fatal_signal_pending(current);
}
