//! The server loop of an attached application: take requests from the channel, run the
//! handler (the generated `dispatch` plugs in unchanged), write the response into the
//! request's slot and hand it back.
//!
//! Requests are copied out of shared memory before the handler sees them; descriptors
//! the dataplane did not make sensibly are skipped and counted. Idle waiting spins, then
//! yields; it never sleeps.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::anf::AppError;

use super::client::{AppChannel, CallError};
use super::proto::Role;
use super::ring::{kind, Desc};
use super::status;

impl AppChannel {
    /// Serves what is waiting (at most `limit` requests); returns how many were served.
    /// `Err(Disconnected)` once the dataplane is gone.
    pub fn serve_once<F>(&mut self, limit: usize, handler: &mut F) -> Result<usize, CallError>
    where
        F: FnMut(u16, &[u8], &mut [u8]) -> Result<usize, AppError>,
    {
        if !matches!(self.role_ref(), Role::Server { .. }) {
            return Err(CallError::WrongRole);
        }
        if !self.alive {
            return Err(CallError::Disconnected);
        }
        let mut served = 0;
        while served < limit {
            let d = match self.mem.consumer.pop() {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(_) => {
                    self.alive = false;
                    return Err(CallError::Disconnected);
                }
            };
            if d.kind != kind::REQUEST || d.slot >= self.mem.arena.count() {
                self.bad_descriptors += 1;
                continue;
            }
            let mut req = std::mem::take(&mut self.req_buf);
            let mut resp = std::mem::take(&mut self.resp_buf);
            let (st, len) = match self.mem.arena.read(d.slot, d.len, &mut req) {
                Err(_) => {
                    self.bad_descriptors += 1;
                    (status::APP_ERROR, 0)
                }
                Ok(n) => match handler(d.method, &req[..n], &mut resp) {
                    Ok(m) if m <= resp.len() => match self.mem.arena.write(d.slot, &resp[..m]) {
                        Ok(()) => (status::OK, m),
                        Err(_) => (status::APP_ERROR, 0),
                    },
                    _ => (status::APP_ERROR, 0),
                },
            };
            self.req_buf = req;
            self.resp_buf = resp;
            let out = Desc {
                kind: kind::RESPONSE,
                status: st,
                service: d.service,
                method: d.method,
                slot: d.slot,
                len: len as u32,
                tag: d.tag,
                aux: d.aux,
            };
            if self.mem.producer.push(&out).is_err() {
                self.alive = false;
                return Err(CallError::Disconnected);
            }
            served += 1;
        }
        if served > 0 {
            self.idle = 0;
        } else if !self.idle_tick() {
            return Err(CallError::Disconnected);
        }
        Ok(served)
    }

    /// Serves until `stop` is set (`Ok`) or the dataplane goes away (`Err(Disconnected)`).
    pub fn serve_until<F>(&mut self, stop: &AtomicBool, mut handler: F) -> Result<(), CallError>
    where
        F: FnMut(u16, &[u8], &mut [u8]) -> Result<usize, AppError>,
    {
        while !stop.load(Ordering::Relaxed) {
            self.serve_once(32, &mut handler)?;
        }
        Ok(())
    }

    /// Serves until the dataplane goes away.
    pub fn serve<F>(&mut self, handler: F) -> Result<(), CallError>
    where
        F: FnMut(u16, &[u8], &mut [u8]) -> Result<usize, AppError>,
    {
        self.serve_until(&AtomicBool::new(false), handler)
    }
}
