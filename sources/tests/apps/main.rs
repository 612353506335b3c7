//! Per-app fixture tests: deliveries built from the payloads and signature examples the apps
//! publish (each fixture cites its source), positive and negative, through the public API the
//! receiver uses (`receive`, `verify`, `acknowledge`, `reject`).

mod commerce;
mod crm;
mod generic;
mod support;
