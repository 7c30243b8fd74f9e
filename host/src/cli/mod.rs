//! The command line beside the server: what `medmemory` does besides `serve`
//! that needs more than a few lines. Top of the stack with the composition
//! root: it may use every module; nothing uses it but the binary.

pub mod backup;
pub mod manifest;
pub mod plugin_run;
