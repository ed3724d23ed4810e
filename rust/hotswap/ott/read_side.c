// SPDX-License-Identifier: GPL-2.0
/*
 * A slot's read-side domain and its grace periods: the generation count.
 *
 * The read side is SRCU-fast's, made small: entering loads the domain's
 * index and increments this CPU's lock counter for it, leaving increments
 * the unlock counter for the same index. No memory barrier, no shared
 * cache line written. As in SRCU-fast, each increment is a single
 * per-CPU instruction (or runs with interrupts off), so it is an implicit
 * RCU reader, and an RCU grace period on the update side stands in for
 * the barriers the readers leave out.
 *
 * The update side is SRCU's algorithm without SRCU's machinery. A grace
 * period scans the index readers are not using (readers that fetched it
 * before an earlier flip), flips the index, then scans the old one; a
 * scan sums the unlocks, waits out an RCU grace period, sums the locks,
 * and is clean when they match. It differs from SRCU in who waits: an
 * srcu_struct runs each grace period as its own state machine on a
 * workqueue, so a batch of N slots meant N state machines, each sleeping
 * in synchronize_rcu() in its own kworker. Here a scan takes a polled RCU
 * cookie (start_poll_synchronize_rcu) and the thread that waits for the
 * grace period moves the state along when it looks
 * (hotswap_domain_done): one RCU grace period serves every slot of a
 * batch, and nothing runs in the background.
 *
 * In Rust's terms this file is unsafe plumbing: domain.rs wraps it. The
 * fast path is here because per-CPU operations are C macros.
 */
#include <linux/percpu.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

/* One CPU's counters of one domain. */
struct hotswap_reader_ctrs {
	unsigned long locks[2];
	unsigned long unlocks[2];
	u64 calls;
};

enum hotswap_gp_phase {
	HOTSWAP_GP_IDLE,
	/* Scanning the unused index, before the flip. */
	HOTSWAP_GP_BEFORE_FLIP,
	/* Scanning the index readers used until the flip. */
	HOTSWAP_GP_AFTER_FLIP,
};

struct hotswap_domain {
	struct hotswap_reader_ctrs __percpu *ctrs;
	/* Readers count themselves in ctrs[idx]; 0 or 1. */
	unsigned int idx;
	/* Serializes the update side; readers never take it. */
	spinlock_t lock;
	enum hotswap_gp_phase phase;
	/* Grace periods completed, and the most any caller waits for. */
	unsigned long completed;
	unsigned long requested;
	/* The scan under way (one is, unless idle): unlock sum, RCU cookie. */
	unsigned long scan_unlocks;
	unsigned long scan_rcu;
};

struct hotswap_domain *hotswap_domain_alloc(void);
void hotswap_domain_free(struct hotswap_domain *d);
void *hotswap_domain_enter(struct hotswap_domain *d, void *const *published, void **loaded);
void hotswap_domain_exit(struct hotswap_domain *d, void *token);
u64 hotswap_domain_calls(struct hotswap_domain *d);
unsigned long hotswap_domain_request(struct hotswap_domain *d);
bool hotswap_domain_done(struct hotswap_domain *d, unsigned long cookie);

struct hotswap_domain *hotswap_domain_alloc(void)
{
	struct hotswap_domain *d = kzalloc(sizeof(*d), GFP_KERNEL);

	if (!d)
		return NULL;
	d->ctrs = alloc_percpu(struct hotswap_reader_ctrs);
	if (!d->ctrs) {
		kfree(d);
		return NULL;
	}
	spin_lock_init(&d->lock);
	return d;
}

/* The caller guarantees no reader is inside and none can come. */
void hotswap_domain_free(struct hotswap_domain *d)
{
	free_percpu(d->ctrs);
	kfree(d);
}

/*
 * Enters the read side, counts the call, and loads the slot's published
 * chain from inside. The token (index + 1, never NULL) goes to _exit.
 */
void *hotswap_domain_enter(struct hotswap_domain *d, void *const *published, void **loaded)
{
	unsigned int idx = READ_ONCE(d->idx) & 1;

	this_cpu_inc(d->ctrs->calls);
	this_cpu_inc(d->ctrs->locks[idx]); /* An implicit RCU reader. */
	barrier(); /* Keep the critical section after the increment. */
	/* Pairs with the fully ordered exchange that publishes a chain. */
	*loaded = smp_load_acquire(published);
	return (void *)(unsigned long)(idx + 1);
}

/* Leaves the read side; may run on another CPU than the enter did. */
void hotswap_domain_exit(struct hotswap_domain *d, void *token)
{
	unsigned int idx = ((unsigned long)token - 1) & 1;

	barrier(); /* Keep the critical section before the increment. */
	this_cpu_inc(d->ctrs->unlocks[idx]); /* An implicit RCU reader. */
}

u64 hotswap_domain_calls(struct hotswap_domain *d)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(per_cpu_ptr(d->ctrs, cpu)->calls);
	return sum;
}

/* The sum over CPUs of the lock (or unlock) counters of index @idx. */
static unsigned long sum_counts(struct hotswap_domain *d, unsigned int idx, bool locks)
{
	unsigned long sum = 0;
	int cpu;

	for_each_possible_cpu(cpu) {
		struct hotswap_reader_ctrs *c = per_cpu_ptr(d->ctrs, cpu);

		sum += locks ? READ_ONCE(c->locks[idx]) : READ_ONCE(c->unlocks[idx]);
	}
	return sum;
}

/*
 * First half of a scan of the index readers are not using: the unlocks,
 * then an RCU grace period starts. Summing unlocks before locks means a
 * counted unlock always has its lock counted (SRCU's argument); the RCU
 * grace period in between orders both sums against the readers, which
 * have no barriers of their own. Called with d->lock held.
 */
static void scan_start(struct hotswap_domain *d)
{
	d->scan_unlocks = sum_counts(d, !d->idx, false);
	d->scan_rcu = start_poll_synchronize_rcu();
}

/*
 * Moves the grace-period state as far as it can go without waiting.
 * Called with d->lock held.
 */
static void advance(struct hotswap_domain *d)
{
	if (d->phase != HOTSWAP_GP_IDLE) {
		/* Same ordering as a synchronize_rcu() between the two sums. */
		if (!poll_state_synchronize_rcu(d->scan_rcu))
			return;
		if (sum_counts(d, !d->idx, true) != d->scan_unlocks) {
			/* Readers still inside: look again later. */
			scan_start(d);
			return;
		}
		if (d->phase == HOTSWAP_GP_BEFORE_FLIP) {
			smp_mb(); /* Readers that see the new index see all before it. */
			WRITE_ONCE(d->idx, !d->idx);
			smp_mb(); /* A reader that missed the flip is seen by the scan. */
			d->phase = HOTSWAP_GP_AFTER_FLIP;
			scan_start(d);
			return;
		}
		/* Every reader inside when the grace period began has left. */
		d->phase = HOTSWAP_GP_IDLE;
		smp_mb(); /* The scans come before whatever the waiter frees. */
		smp_store_release(&d->completed, d->completed + 1);
	}
	if (ULONG_CMP_LT(d->completed, d->requested)) {
		d->phase = HOTSWAP_GP_BEFORE_FLIP;
		scan_start(d);
	}
}

/*
 * Asks for a grace period that starts after this call and returns its
 * cookie. One already under way may have scanned past readers that came
 * before this call, so the one after it is needed then.
 */
unsigned long hotswap_domain_request(struct hotswap_domain *d)
{
	unsigned long need;

	smp_mb(); /* What the caller published comes before the scans. */
	spin_lock(&d->lock);
	need = d->completed + (d->phase == HOTSWAP_GP_IDLE ? 1 : 2);
	if (ULONG_CMP_LT(d->requested, need))
		d->requested = need;
	advance(d);
	spin_unlock(&d->lock);
	return need;
}

/*
 * Whether the grace period of @cookie is over, moving it along first.
 * Never sleeps; callers poll it (with naps) until it says yes.
 */
bool hotswap_domain_done(struct hotswap_domain *d, unsigned long cookie)
{
	if (ULONG_CMP_GE(smp_load_acquire(&d->completed), cookie))
		return true;
	spin_lock(&d->lock);
	advance(d);
	spin_unlock(&d->lock);
	return ULONG_CMP_GE(smp_load_acquire(&d->completed), cookie);
}
