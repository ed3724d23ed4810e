// SPDX-License-Identifier: GPL-2.0
//! The object translation table: slots (how clients reach an object), the
//! chain of layers a slot publishes, the read-side domains that tell when
//! no call is inside, the instances behind the layers, the mediator (the
//! layer a replacement puts at the bottom while it runs, K42's "mediator
//! interposed in the slot") with its phases, each slot's swap history, and
//! the table of live objects by id. Uses the registry; knows nothing of
//! how a swap is driven (`swap/`).

pub(crate) mod chain;
pub(crate) mod domain;
pub(crate) mod history;
pub(crate) mod instance;
pub(crate) mod mediator;
pub(crate) mod objects;
pub(crate) mod phase;
pub(crate) mod slot;
