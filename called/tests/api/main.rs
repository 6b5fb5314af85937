//! Integration tests of the called service: real server on 127.0.0.1:0, real SQLite file.

mod helpers;

mod durability;
mod idempotency;
mod reads;
mod validation;
