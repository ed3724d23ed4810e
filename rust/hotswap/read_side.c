// SPDX-License-Identifier: GPL-2.0
/*
 * The read side of a slot, in C because its fast primitives are static
 * inline functions and macros that Rust cannot call: SRCU-fast readers
 * (srcu_read_lock_fast: no smp_mb(), a per-CPU increment) and a per-CPU
 * call counter (this_cpu_inc). domain.rs wraps these.
 *
 * Entering also loads the slot's published chain: one call instead of two
 * on every call through a slot (Rust's atomics are C helpers too, and the
 * call path is what make bench's call_overhead measures).
 */
#include <linux/percpu.h>
#include <linux/srcu.h>

int hotswap_domain_init(struct srcu_struct *ssp);
void hotswap_domain_cleanup(struct srcu_struct *ssp);
struct srcu_ctr __percpu *hotswap_domain_enter(struct srcu_struct *ssp, u64 __percpu *calls,
					       void *const *published, void **loaded);
void hotswap_domain_exit(struct srcu_struct *ssp, struct srcu_ctr __percpu *ctr);
u64 __percpu *hotswap_counter_alloc(void);
void hotswap_counter_free(u64 __percpu *counter);
u64 hotswap_counter_sum(u64 __percpu *counter);

int hotswap_domain_init(struct srcu_struct *ssp)
{
	return init_srcu_struct_fast(ssp);
}

void hotswap_domain_cleanup(struct srcu_struct *ssp)
{
	cleanup_srcu_struct(ssp);
}

struct srcu_ctr __percpu *hotswap_domain_enter(struct srcu_struct *ssp, u64 __percpu *calls,
					       void *const *published, void **loaded)
{
	struct srcu_ctr __percpu *ctr;

	this_cpu_inc(*calls);
	ctr = srcu_read_lock_fast(ssp);
	/* Pairs with the fully ordered exchange that publishes a chain. */
	*loaded = smp_load_acquire(published);
	return ctr;
}

void hotswap_domain_exit(struct srcu_struct *ssp, struct srcu_ctr __percpu *ctr)
{
	srcu_read_unlock_fast(ssp, ctr);
}

u64 __percpu *hotswap_counter_alloc(void)
{
	return alloc_percpu(u64);
}

void hotswap_counter_free(u64 __percpu *counter)
{
	free_percpu(counter);
}

u64 hotswap_counter_sum(u64 __percpu *counter)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += *per_cpu_ptr(counter, cpu);
	return sum;
}
