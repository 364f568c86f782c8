//! Generator combinators: leaves ([`from_fn`], [`once`]) and wrappers ([`mix`], [`stagger`], [`limit`],
//! [`time_limit`], [`phases`], [`each_thread`], [`cycle`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{BoxGen, Context, GenFactory, Generator, Invocation, Next};
use crate::rng::Rng;

struct FromFn<F>(F);

impl<F> Generator for FromFn<F>
where
    F: FnMut(&Context, &mut Rng) -> Invocation + Send,
{
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        Next::Op((self.0)(ctx, rng))
    }
}

/// An endless generator calling `f` for each operation.
pub fn from_fn<F>(f: F) -> BoxGen
where
    F: FnMut(&Context, &mut Rng) -> Invocation + Send + 'static,
{
    Box::new(FromFn(f))
}

struct Once(Option<Invocation>);

impl Generator for Once {
    fn next(&mut self, _: &Context, _: &mut Rng) -> Next {
        self.0.take().map_or(Next::Done, Next::Op)
    }
}

/// Exactly one operation, then done.
pub fn once(op: Invocation) -> BoxGen {
    Box::new(Once(Some(op)))
}

struct Mix(Vec<BoxGen>);

impl Generator for Mix {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        while !self.0.is_empty() {
            let i = rng.index(self.0.len());
            match self.0[i].next(ctx, rng) {
                Next::Done => {
                    self.0.remove(i);
                }
                other => return other,
            }
        }
        Next::Done
    }
}

/// Each operation from a uniformly chosen member generator; done when all are done.
pub fn mix(gens: Vec<BoxGen>) -> BoxGen {
    Box::new(Mix(gens))
}

struct Stagger {
    mean: Duration,
    next_at: Option<Duration>,
    inner: BoxGen,
}

impl Generator for Stagger {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        if let Some(at) = self.next_at.filter(|at| *at > ctx.elapsed) {
            return Next::Wait(at);
        }
        let next = self.inner.next(ctx, rng);
        if matches!(next, Next::Op(_)) {
            // Uniform in [0, 2·mean): the mean rate is 1/mean across all threads sharing this generator.
            let gap = self.mean.mul_f64(2.0 * rng.unit());
            let base = self.next_at.unwrap_or(ctx.elapsed).max(ctx.elapsed);
            self.next_at = Some(base + gap);
        }
        next
    }
}

/// Paces `inner` to about `rate` operations per second in total (random gaps, mean 1/rate). A rate of 0 or
/// less means unpaced.
pub fn stagger(rate: f64, inner: BoxGen) -> BoxGen {
    if !(rate > 0.0 && rate.is_finite()) {
        return inner;
    }
    Box::new(Stagger {
        mean: Duration::from_secs_f64(1.0 / rate),
        next_at: None,
        inner,
    })
}

struct Limit {
    left: u64,
    inner: BoxGen,
}

impl Generator for Limit {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        if self.left == 0 {
            return Next::Done;
        }
        let next = self.inner.next(ctx, rng);
        if matches!(next, Next::Op(_)) {
            self.left -= 1;
        }
        next
    }
}

/// At most `n` operations from `inner`.
pub fn limit(n: u64, inner: BoxGen) -> BoxGen {
    Box::new(Limit { left: n, inner })
}

struct TimeLimit {
    length: Duration,
    ends_at: Option<Duration>,
    inner: BoxGen,
}

impl Generator for TimeLimit {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        let ends_at = *self.ends_at.get_or_insert(ctx.elapsed + self.length);
        if ctx.elapsed >= ends_at {
            return Next::Done;
        }
        match self.inner.next(ctx, rng) {
            // A wait past the end is the end (the caller would only come back to hear "done").
            Next::Wait(at) if at >= ends_at => Next::Wait(ends_at),
            other => other,
        }
    }
}

/// Operations from `inner` for `length`, counted from the first request.
pub fn time_limit(length: Duration, inner: BoxGen) -> BoxGen {
    Box::new(TimeLimit {
        length,
        ends_at: None,
        inner,
    })
}

struct Phases(std::collections::VecDeque<BoxGen>);

impl Generator for Phases {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        while let Some(current) = self.0.front_mut() {
            match current.next(ctx, rng) {
                Next::Done => {
                    self.0.pop_front();
                }
                other => return other,
            }
        }
        Next::Done
    }
}

/// `gens` one after another: the next starts when the previous is done.
pub fn phases(gens: Vec<BoxGen>) -> BoxGen {
    Box::new(Phases(gens.into()))
}

struct EachThread {
    factory: GenFactory,
    per_thread: BTreeMap<usize, BoxGen>,
}

impl Generator for EachThread {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        let factory = &self.factory;
        self.per_thread
            .entry(ctx.thread)
            .or_insert_with(|| factory())
            .next(ctx, rng)
    }
}

/// Gives every worker thread its own copy of the generator `factory` makes (e.g. one final read each).
pub fn each_thread(factory: GenFactory) -> BoxGen {
    Box::new(EachThread {
        factory,
        per_thread: BTreeMap::new(),
    })
}

struct Cycle {
    factory: GenFactory,
    current: BoxGen,
    rounds_left: Option<u64>,
    produced_this_round: bool,
}

impl Generator for Cycle {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        loop {
            match self.current.next(ctx, rng) {
                Next::Done => {
                    // A round that produced nothing would cycle forever.
                    if !self.produced_this_round {
                        return Next::Done;
                    }
                    if let Some(left) = &mut self.rounds_left {
                        *left = left.saturating_sub(1);
                        if *left == 0 {
                            return Next::Done;
                        }
                    }
                    self.current = (self.factory)();
                    self.produced_this_round = false;
                }
                other => {
                    self.produced_this_round |= matches!(other, Next::Op(_));
                    return other;
                }
            }
        }
    }
}

/// Repeats the generator `factory` makes, `rounds` times (`None`: forever).
pub fn cycle(rounds: Option<u64>, factory: GenFactory) -> BoxGen {
    let current = factory();
    Box::new(Cycle {
        factory,
        current,
        rounds_left: rounds,
        produced_this_round: false,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::generator::drain;

    fn op(f: &str) -> Invocation {
        Invocation::new(f, json!(null))
    }

    fn counter() -> BoxGen {
        let mut n = 0;
        from_fn(move |_, _| {
            n += 1;
            Invocation::new("write", json!(n))
        })
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn limit_stops_after_n_and_once_gives_one() {
        let mut rng = Rng::seed_from_u64(1);
        assert_eq!(drain(limit(5, counter()).as_mut(), &mut rng, 0, LONG).len(), 5);
        assert_eq!(drain(once(op("read")).as_mut(), &mut rng, 0, LONG).len(), 1);
    }

    #[test]
    fn mix_draws_from_every_member_deterministically() {
        let make = || mix(vec![from_fn(|_, _| op("read")), from_fn(|_, _| op("write"))]);
        let a = drain(limit(200, make()).as_mut(), &mut Rng::seed_from_u64(3), 0, LONG);
        let b = drain(limit(200, make()).as_mut(), &mut Rng::seed_from_u64(3), 0, LONG);
        assert_eq!(a, b);
        let reads = a.iter().filter(|(_, o)| o.f == "read").count();
        assert!((60..140).contains(&reads), "reads {reads} of 200");
    }

    #[test]
    fn mix_continues_with_the_rest_when_one_is_done() {
        let mut g = mix(vec![once(op("a")), limit(3, from_fn(|_, _| op("b")))]);
        let ops = drain(g.as_mut(), &mut Rng::seed_from_u64(4), 0, LONG);
        assert_eq!(ops.len(), 4);
        assert_eq!(ops.iter().filter(|(_, o)| o.f == "a").count(), 1);
    }

    #[test]
    fn stagger_paces_to_the_rate() {
        let mut g = stagger(100.0, counter());
        let ops = drain(g.as_mut(), &mut Rng::seed_from_u64(5), 0, Duration::from_secs(10));
        // 100/s for 10 s: about 1000, random gaps.
        assert!((850..1150).contains(&ops.len()), "{} ops", ops.len());
        assert!(ops.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn time_limit_ends_the_phase_and_phases_move_on() {
        let first = time_limit(Duration::from_secs(1), stagger(10.0, from_fn(|_, _| op("a"))));
        let mut g = phases(vec![first, once(op("final"))]);
        let ops = drain(g.as_mut(), &mut Rng::seed_from_u64(6), 0, LONG);
        let (last_time, last) = ops.last().cloned().expect("ops");
        assert_eq!(last.f, "final");
        assert!(last_time >= Duration::from_secs(1));
        assert!(
            ops[..ops.len() - 1]
                .iter()
                .all(|(t, o)| o.f == "a" && *t < Duration::from_secs(1))
        );
    }

    #[test]
    fn each_thread_gives_every_thread_its_own_copy() {
        let mut g = each_thread(Box::new(|| once(op("final-read"))));
        let mut rng = Rng::seed_from_u64(7);
        for thread in 0..3 {
            let ctx = Context {
                elapsed: Duration::ZERO,
                thread,
            };
            assert!(matches!(g.next(&ctx, &mut rng), Next::Op(_)));
            assert_eq!(g.next(&ctx, &mut rng), Next::Done);
        }
    }

    #[test]
    fn cycle_repeats_a_finite_generator() {
        let mut g = cycle(Some(3), Box::new(|| phases(vec![once(op("start")), once(op("stop"))])));
        let fs: Vec<String> = drain(g.as_mut(), &mut Rng::seed_from_u64(8), 0, LONG)
            .into_iter()
            .map(|(_, o)| o.f)
            .collect();
        assert_eq!(fs, ["start", "stop", "start", "stop", "start", "stop"]);
        let mut empty = cycle(None, Box::new(|| phases(vec![])));
        assert!(drain(empty.as_mut(), &mut Rng::seed_from_u64(8), 0, LONG).is_empty());
    }
}
