//! Socket plumbing: the shared listening port and the file → socket transfers of Fetch.

pub mod listener;
pub mod sendfile;
