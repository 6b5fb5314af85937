//! Integration tests of the called service: real server on 127.0.0.1:0, real SQLite file or
//! PostgreSQL schema (`TEST_DATABASE_URL`; see `helpers`).

mod helpers;

mod durability;
mod idempotency;
mod identity;
mod numbers;
mod pages;
mod postgres;
mod readiness;
mod reads;
mod upgrade;
mod validation;
