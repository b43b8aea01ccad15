//! What the `peer` and `tracker` harnesses share: decoding a program, patching a datagram with
//! bytes of the core's, and driving a core's timers through `Node`.

use arbitrary::{Arbitrary, Unstructured};
use soplab_node::{Micros, Node};

use crate::MAX_OPS;
use crate::check::invariant;

/// The program `data` encodes: a setup and at most [`MAX_OPS`] operations.
pub fn program<'a, S: Arbitrary<'a>, O: Arbitrary<'a>>(data: &'a [u8]) -> Option<(S, Vec<O>)> {
    let mut u = Unstructured::new(data);
    let setup = S::arbitrary(&mut u).ok()?;
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        let Ok(op) = O::arbitrary(&mut u) else { break };
        ops.push(op);
    }
    Some((setup, ops))
}

/// Copies `len` (at most 16) bytes of the last datagram the core sent an address, from offset
/// `src`, over the next datagram from that address at offset `dst`: whatever a core hands out
/// to prove a round trip (a nonce, a token, a cookie), wherever it is, can be echoed.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Patch {
    pub src: u8,
    pub dst: u8,
    pub len: u8,
}

impl Patch {
    /// Applies the patch to `to` with bytes of `from` (nothing if either is empty).
    pub fn apply(self, from: &[u8], to: &mut [u8]) {
        if from.is_empty() || to.is_empty() {
            return;
        }
        let src = usize::from(self.src) % from.len();
        let dst = usize::from(self.dst) % to.len();
        let n = usize::from(self.len % 17).min(from.len() - src).min(to.len() - dst);
        to[dst..dst + n].copy_from_slice(&from[src..src + n]);
    }
}

/// A harness around one core: its clock, its wake-up budget, and what it checks after a step.
pub trait Drive {
    type Core: Node;

    fn core(&mut self) -> &mut Self::Core;
    fn clock(&mut self) -> &mut Micros;
    /// Wake-ups so far, and the most a program may run.
    fn wakeups(&mut self) -> (&mut u32, u32);
    /// Drains the core's output after a step and checks it.
    fn settle(&mut self);

    /// Runs the core's timers now, and checks that its next deadline is later (`progress`: a
    /// driver that wakes it at its deadline never spins).
    fn wake(&mut self) {
        let now = *self.clock();
        *self.wakeups().0 += 1;
        self.core().handle_timeout(now);
        self.settle();
        let next = self.core().poll_timeout();
        invariant("progress", next.is_none_or(|t| t > now), || {
            format!("woken at {now} us, the core wants waking at {next:?} again")
        });
    }

    /// Lets `by` pass, waking the core at each deadline on the way while the budget lasts, then
    /// once at the end if a deadline is due (as a driver does after a long stall).
    fn advance(&mut self, by: Micros) {
        let end = *self.clock() + by;
        loop {
            let (done, max) = self.wakeups();
            if *done >= max {
                break;
            }
            match self.core().poll_timeout() {
                Some(t) if t <= end => {
                    let now = self.clock();
                    *now = (*now).max(t);
                    self.wake();
                }
                _ => break,
            }
        }
        *self.clock() = end;
        if self.core().poll_timeout().is_some_and(|t| t <= end) {
            self.wake();
        }
    }

    /// Runs the core's next timer, if it has one.
    fn next_timer(&mut self) {
        if let Some(t) = self.core().poll_timeout() {
            let now = self.clock();
            *now = (*now).max(t);
            self.wake();
        }
    }
}

/// A fixed pseudo-random stream of inputs of growing length, as a fuzzer's first mutations
/// would be (for the harnesses' own tests).
#[cfg(test)]
pub(crate) fn inputs(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed;
    (0..count).map(move |i| {
        (0..16 + i * 7)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    })
}
