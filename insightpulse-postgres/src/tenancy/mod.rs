//! Tenancy & identity on PostgreSQL (core module [`insightpulse_core::tenancy`]).
//!
//! One file per concept, as in core and the memory backend. Who may see or
//! change what is asked through [`crate::guard`], the same for every module.

mod api_keys;
mod auth;
mod members;
mod rbac;
mod sso;
mod teams;
mod tenants;
mod users;
