// SPDX-License-Identifier: GPL-2.0
//! A chain: what a slot points at. Interposers first (outermost first),
//! the object last, and, during a replacement, the mediator that decides
//! where calls reaching the object go.
//!
//! A chain never changes once published. Interposing, removing an
//! interposer and each step of a replacement publish a new chain; the old
//! one is retired and freed after a grace period of the slot's domain, so a
//! call runs on one consistent chain from start to end, and an interposer's
//! forward (`hotswap_call_next`) always finds the layer below it.

use crate::api::Call;
use crate::ott::instance::Instance;
use crate::ott::mediator::{Mediator, Target};
use kernel::prelude::*;
use kernel::sync::Arc;

/// Layers of a slot, immutable once published.
pub(crate) struct Chain {
    /// Interposers, outermost first, then the object.
    pub(crate) layers: KVec<Arc<Instance>>,
    /// The replacement in progress, if any.
    pub(crate) mediator: Option<Arc<Mediator>>,
}

impl Chain {
    /// A chain of `layers` (object last) and an optional mediator.
    pub(crate) fn new(
        layers: KVec<Arc<Instance>>,
        mediator: Option<Arc<Mediator>>,
    ) -> Result<KBox<Self>> {
        if layers.is_empty() {
            return Err(EINVAL);
        }
        Ok(KBox::new(Self { layers, mediator }, GFP_KERNEL)?)
    }

    /// A copy of the layers with the object replaced by `object`.
    pub(crate) fn layers_with_object(&self, object: &Arc<Instance>) -> Result<KVec<Arc<Instance>>> {
        let mut layers = KVec::with_capacity(self.layers.len(), GFP_KERNEL)?;
        let last = self.layers.len() - 1;
        for layer in &self.layers[..last] {
            layers.push(layer.clone(), GFP_KERNEL)?;
        }
        layers.push(object.clone(), GFP_KERNEL)?;
        Ok(layers)
    }

    /// The object (the innermost layer).
    pub(crate) fn object(&self) -> &Arc<Instance> {
        // `new` refuses an empty chain.
        &self.layers[self.layers.len() - 1]
    }

    /// Fills `call` with the layer at `depth`. At the object, a mediator
    /// (if any) decides which object serves the call and may make it wait.
    #[inline]
    pub(crate) fn resolve(&self, depth: usize, call: &mut Call) -> Result {
        let layer = self.layers.get(depth).ok_or(EINVAL)?;
        call.depth = depth as u32;
        if depth + 1 == self.layers.len() {
            if let Some(mediator) = &self.mediator {
                return Self::resolve_mediated(mediator, call);
            }
        }
        call.methods = layer.methods();
        call.obj = layer.obj;
        call.mediator = core::ptr::null();
        call.tracked = 0;
        Ok(())
    }

    #[cold]
    fn resolve_mediated(mediator: &Arc<Mediator>, call: &mut Call) -> Result {
        let (target, task) = mediator.enter()?;
        let instance = match target {
            Target::Old => &mediator.old,
            Target::New => &mediator.new,
        };
        call.methods = instance.methods();
        call.obj = instance.obj;
        call.mediator = Arc::as_ptr(mediator).cast();
        call.tracked = u32::from(task.is_some());
        call.task = task.unwrap_or(0);
        Ok(())
    }
}
