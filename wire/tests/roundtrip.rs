//! Property tests: every message survives emit -> parse -> emit unchanged, and video responses
//! survive segmentation, loss, reordering and duplication through the `Reassembler`.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{Rng, block_range, repr};
use proptest::prelude::*;
use soplab_wire::video::{Insert, fragment_count};
use soplab_wire::{BLOCK_LEN, Message, Reassembler, Repr, Video, segment};

/// The bytes of the `count`-block response `data` as encoded video datagrams.
fn encode_response(request: u32, first_block: u32, data: &[u8]) -> Vec<Vec<u8>> {
    segment(request, first_block, data)
        .expect("valid response")
        .enumerate()
        .map(|(i, v)| Repr::new(i as u32, Message::Video(v)).to_vec())
        .collect()
}

/// Decodes a datagram that must be a video packet.
fn video(bytes: &[u8]) -> Video<'_> {
    match Repr::parse(bytes).expect("video packet parses").message {
        Message::Video(v) => v,
        other => panic!("expected a video packet, got {other:?}"),
    }
}

/// Which blocks of an `n`-block response arrived whole, computed from byte ranges only: block b
/// covers bytes [b*10240, (b+1)*10240), packet i covers [i*1295, min((i+1)*1295, n*10240)), and
/// a block is whole when every packet overlapping it arrived.
fn expected_complete(n: usize, arrived: &[bool]) -> Vec<usize> {
    let total_len = n * 10_240;
    (0..n)
        .filter(|&b| {
            let (lo, hi) = (b * 10_240, (b + 1) * 10_240);
            arrived.iter().enumerate().all(|(i, &got)| {
                let (plo, phi) = (i * 1295, ((i + 1) * 1295).min(total_len));
                let overlaps = plo < hi && phi > lo;
                !overlaps || got
            })
        })
        .collect()
}

proptest! {
    /// parse(emit(x)) == x and emit(parse(bytes)) == bytes, for every message variant.
    #[test]
    fn emit_then_parse_is_identity((seq, owned) in repr()) {
        let repr = Repr::new(seq, owned.message());
        let bytes = repr.to_vec();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        prop_assert!(bytes.len() <= 1320, "{} bytes", bytes.len());
        let parsed = Repr::parse(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&repr));
        let again = parsed.unwrap().to_vec();
        prop_assert_eq!(&again, &bytes);

        // emit() into a dirty, longer buffer writes exactly buffer_len() bytes, the same ones.
        let mut dirty = vec![0xa5u8; bytes.len() + 7];
        prop_assert_eq!(repr.emit(&mut dirty), bytes.len());
        prop_assert_eq!(&dirty[..bytes.len()], &bytes[..]);
        prop_assert!(dirty[bytes.len()..].iter().all(|&b| b == 0xa5));
    }

    /// Segmenting a random response and delivering its packets shuffled, some of them two or
    /// three times, reassembles exactly the original bytes. Completion happens at the first
    /// moment every packet has been seen; every repeat, before or after it, is a duplicate.
    #[test]
    fn shuffled_duplicated_delivery_reassembles(
        (first_block, count) in block_range(),
        request in any::<u32>(),
        seed in any::<u64>(),
        dup_pct in 0usize..100,
    ) {
        let mut rng = Rng(seed);
        let data = rng.bytes(usize::from(count) * BLOCK_LEN);
        let packets = encode_response(request, first_block, &data);
        let total = usize::from(fragment_count(count));
        prop_assert_eq!(packets.len(), total);
        prop_assert!(packets.iter().all(|p| p.len() <= 1320));

        let mut order: Vec<usize> = (0..total).collect();
        for i in 0..total {
            if rng.below(100) < dup_pct {
                order.push(i);
                if rng.below(2) == 0 {
                    order.push(i);
                }
            }
        }
        rng.shuffle(&mut order);

        let mut r: Reassembler<u8> = Reassembler::new(4);
        let mut seen = vec![false; total];
        let mut missing = total;
        let mut completed = false;
        for (step, &i) in order.iter().enumerate() {
            let v = video(&packets[i]);
            prop_assert_eq!(v.index as usize, i);
            let res = r.insert(7, step as u64, &v).expect("valid packet");
            // Repeats before completion, and any packet after it, change nothing.
            if seen[i] || completed {
                prop_assert_eq!(res, Insert::Duplicate);
                continue;
            }
            seen[i] = true;
            missing -= 1;
            if missing > 0 {
                prop_assert_eq!(res, Insert::Stored { evicted: None });
                continue;
            }
            match res {
                Insert::Complete(c) => {
                    prop_assert_eq!(c.request, request);
                    prop_assert_eq!(c.first_block, first_block);
                    prop_assert_eq!(c.count, count);
                    prop_assert!(c.data == &data[..], "reassembled bytes differ");
                }
                other => prop_assert!(false, "last packet did not complete: {:?}", other),
            }
            completed = true;
        }
        prop_assert!(completed);
        prop_assert_eq!(r.in_progress(), 0);
    }

    /// With packets dropped, `expire` reports the response once, marking complete exactly the
    /// blocks all of whose packets arrived, and the bytes of those blocks are the original ones.
    #[test]
    fn expire_reports_exactly_the_whole_blocks(
        (first_block, count) in block_range(),
        request in any::<u32>(),
        seed in any::<u64>(),
        drop_pct in 1usize..70,
    ) {
        let mut rng = Rng(seed);
        let n = usize::from(count);
        let data = rng.bytes(n * BLOCK_LEN);
        let packets = encode_response(request, first_block, &data);
        let arrived: Vec<bool> = (0..packets.len()).map(|_| rng.below(100) >= drop_pct).collect();
        let mut order: Vec<usize> = (0..packets.len()).filter(|&i| arrived[i]).collect();
        rng.shuffle(&mut order);

        let mut r: Reassembler<(u8, u16)> = Reassembler::new(3);
        let key = (1, 2);
        let mut completed = false;
        for &i in &order {
            match r.insert(key, 100, &video(&packets[i])).expect("valid packet") {
                Insert::Complete(c) => {
                    prop_assert!(c.data == &data[..]);
                    completed = true;
                }
                Insert::Stored { evicted: None } => {}
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        let all = arrived.iter().all(|&a| a);
        prop_assert_eq!(completed, all);
        prop_assert_eq!(r.in_progress(), usize::from(!order.is_empty() && !all));

        // Not older than 100 yet: nothing expires.
        let mut reports = Vec::new();
        r.expire(100, |inc, _| reports.push(inc));
        prop_assert!(reports.is_empty());

        let want: Vec<u32> = expected_complete(n, &arrived).iter().map(|&b| first_block + b as u32).collect();
        let mut checked_bytes = true;
        r.expire(101, |inc, bytes| {
            for id in inc.complete_blocks() {
                let b = (id - first_block) as usize;
                let range = b * BLOCK_LEN..(b + 1) * BLOCK_LEN;
                checked_bytes &= bytes.get(range.clone()) == Some(&data[range]);
            }
            reports.push(inc);
        });
        prop_assert!(checked_bytes, "bytes of a block reported complete differ");
        if order.is_empty() || all {
            prop_assert!(reports.is_empty(), "{:?}", reports);
        } else {
            prop_assert_eq!(reports.len(), 1);
            let inc = reports[0];
            prop_assert_eq!(inc.key, key);
            prop_assert_eq!(inc.request, request);
            prop_assert_eq!(inc.first_block, first_block);
            prop_assert_eq!(inc.count, count);
            prop_assert_eq!(inc.complete_blocks().collect::<Vec<_>>(), want.clone());
            let rest: Vec<u32> = (first_block..=first_block + u32::from(count) - 1).filter(|id| !want.contains(id)).collect();
            prop_assert_eq!(inc.incomplete_blocks().collect::<Vec<_>>(), rest);
        }
        prop_assert_eq!(r.in_progress(), 0);
    }

    /// Many responses interleaved through a small reassembler, checked against a model: a
    /// packet of a response not in progress opens it, evicting the response that started
    /// earliest when every slot is busy; a response completes when all its packets arrived since
    /// it was opened. A packet of a response that recently ended (completed or evicted) is a
    /// duplicate: the model requires that for the last `slots` responses to end, and accepts
    /// either a duplicate or a re-opening for older ones (how long the reassembler remembers is
    /// its own business). In-progress responses never exceed the slot count.
    #[test]
    fn many_responses_match_the_model(
        slots in 1usize..=4,
        responses in 2usize..14,
        seed in any::<u64>(),
        drop_pct in 0usize..25,
        spread in 1u64..400,
    ) {
        let mut rng = Rng(seed);
        let mut datas = Vec::new();
        let mut packets = Vec::new();
        let mut schedule = Vec::new();
        for resp in 0..responses {
            let count = 1 + rng.below(3) as u8;
            let data = rng.bytes(usize::from(count) * BLOCK_LEN);
            let p = encode_response(resp as u32, 10 * resp as u32, &data);
            for i in 0..p.len() {
                if rng.below(100) >= drop_pct {
                    // Responses start 100 apart; their packets spread over `spread` ticks.
                    schedule.push((100 * resp as u64 + rng.below(spread as usize) as u64, resp, i));
                }
            }
            datas.push(data);
            packets.push(p);
        }
        schedule.sort();

        struct Open { started: u64, have: BTreeSet<usize> }
        let mut model: HashMap<usize, Open> = HashMap::new();
        // Responses in the order they ended (completed or evicted).
        let mut ended: Vec<usize> = Vec::new();
        let mut r: Reassembler<u8> = Reassembler::new(slots);
        let key = |resp: usize| (resp % 3) as u8;
        for (step, &(_, resp, i)) in schedule.iter().enumerate() {
            let now = step as u64;
            let v = video(&packets[resp][i]);
            let total = packets[resp].len();
            let res = r.insert(key(resp), now, &v).expect("valid packet");
            if let Some(open) = model.get_mut(&resp) {
                prop_assert!(open.have.insert(i), "schedule repeats a packet");
                if open.have.len() == total {
                    model.remove(&resp);
                    ended.push(resp);
                    match res {
                        Insert::Complete(c) => {
                            prop_assert_eq!(c.request, resp as u32);
                            prop_assert!(c.data == &datas[resp][..]);
                        }
                        other => prop_assert!(false, "expected completion of {}: {:?}", resp, other),
                    }
                } else {
                    prop_assert_eq!(res, Insert::Stored { evicted: None });
                }
            } else {
                if let Some(ago) = ended.iter().rev().position(|&e| e == resp) {
                    if ago < slots {
                        prop_assert_eq!(&res, &Insert::Duplicate, "response {} ended {} endings ago", resp, ago);
                    }
                    if res == Insert::Duplicate {
                        prop_assert_eq!(r.in_progress(), model.len());
                        continue;
                    }
                }
                let evicted = if model.len() == slots {
                    let (&oldest, _) = model.iter().min_by_key(|(_, o)| o.started).expect("slots > 0");
                    model.remove(&oldest);
                    ended.push(oldest);
                    Some(oldest)
                } else {
                    None
                };
                model.insert(resp, Open { started: now, have: BTreeSet::from([i]) });
                match (res, evicted) {
                    (Insert::Stored { evicted: None }, None) => {}
                    (Insert::Stored { evicted: Some(inc) }, Some(old)) => {
                        prop_assert_eq!(inc.request, old as u32);
                        prop_assert_eq!(inc.key, key(old));
                        prop_assert_eq!(inc.first_block, 10 * old as u32);
                    }
                    (res, evicted) => prop_assert!(false, "got {:?}, model evicts {:?}", res, evicted),
                }
            }
            prop_assert_eq!(r.in_progress(), model.len());
            prop_assert!(r.in_progress() <= slots);
        }
        let mut left: Vec<u32> = Vec::new();
        r.expire(u64::MAX, |inc, _| left.push(inc.request));
        left.sort_unstable();
        let mut want: Vec<u32> = model.keys().map(|&k| k as u32).collect();
        want.sort_unstable();
        prop_assert_eq!(left, want);
        prop_assert_eq!(r.in_progress(), 0);
    }
}

#[test]
fn two_slots_three_responses_evicts_the_oldest() {
    let data: Vec<Vec<u8>> = (0..3u8).map(|k| vec![k; 2 * BLOCK_LEN]).collect();
    let packets: Vec<Vec<Vec<u8>>> = (0..3).map(|k| encode_response(k as u32 + 1, 50 * k as u32, &data[k])).collect();
    let mut r: Reassembler<u32> = Reassembler::new(2);

    // Response 1 (key 10) gets all packets of its block 0 (packets 0..=7, bytes 0..10360).
    for p in &packets[0][..8] {
        assert_eq!(r.insert(10, 0, &video(p)), Ok(Insert::Stored { evicted: None }));
    }
    // Response 2 (key 20) starts later; response 1 then gets one more packet, which does not
    // make it younger: eviction goes by start time.
    assert_eq!(r.insert(20, 1, &video(&packets[1][0])), Ok(Insert::Stored { evicted: None }));
    assert_eq!(r.insert(10, 2, &video(&packets[0][12])), Ok(Insert::Stored { evicted: None }));
    assert_eq!(r.in_progress(), 2);

    // Response 3 needs a slot: response 1 is given up and reported, block 0 whole, block 1 not.
    let res = r.insert(30, 3, &video(&packets[2][0])).expect("valid");
    let Insert::Stored { evicted: Some(inc) } = res else { panic!("expected an eviction, got {res:?}") };
    assert_eq!((inc.key, inc.request, inc.first_block, inc.count), (10, 1, 0, 2));
    assert_eq!(inc.complete, 0b01);
    assert_eq!(inc.complete_blocks().collect::<Vec<_>>(), [0]);
    assert_eq!(inc.incomplete_blocks().collect::<Vec<_>>(), [1]);
    assert_eq!(r.in_progress(), 2);

    // Responses 2 and 3 still complete with their own bytes.
    for (k, key) in [(1usize, 20u32), (2, 30)] {
        let mut done = false;
        for p in &packets[k][1..] {
            if let Insert::Complete(c) = r.insert(key, 4, &video(p)).expect("valid") {
                assert!(c.data == &data[k][..], "response {} bytes", k + 1);
                done = true;
            }
        }
        assert!(done, "response {} completed", k + 1);
    }
    assert_eq!(r.in_progress(), 0);
    let mut reports = 0;
    r.expire(u64::MAX, |_, _| reports += 1);
    assert_eq!(reports, 0);
}

#[test]
fn responses_are_told_apart_by_key_and_request() {
    // Same request id from two parents (keys): two slots, neither disturbs the other.
    let a = vec![1u8; BLOCK_LEN];
    let b = vec![2u8; BLOCK_LEN];
    let pa = encode_response(5, 100, &a);
    let pb = encode_response(5, 100, &b);
    let mut r: Reassembler<u8> = Reassembler::new(2);
    let mut done = Vec::new();
    for i in 0..pa.len() {
        for (key, p, d) in [(1u8, &pa, &a), (2u8, &pb, &b)] {
            if let Insert::Complete(c) = r.insert(key, 0, &video(&p[i])).expect("valid") {
                assert!(c.data == &d[..]);
                done.push(key);
            }
        }
    }
    assert_eq!(done, [1, 2]);

    // A packet that matches a response in progress by key and request but names other blocks is
    // rejected and changes nothing.
    let mut r: Reassembler<u8> = Reassembler::new(2);
    assert!(matches!(r.insert(1, 0, &video(&pa[0])), Ok(Insert::Stored { evicted: None })));
    let other = encode_response(5, 101, &b);
    assert!(r.insert(1, 0, &video(&other[1])).is_err());
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.insert(1, 0, &video(&pa[0])), Ok(Insert::Duplicate));
}

#[test]
fn memory_stays_bounded_over_many_responses() {
    let slots = 3;
    let mut r: Reassembler<u16> = Reassembler::new(slots);
    let mut rng = Rng(99);
    let data = rng.bytes(16 * BLOCK_LEN);
    let mut completes = 0;
    for resp in 0..500u32 {
        let count = 1 + (resp % 16) as usize;
        let packets = encode_response(resp, resp * 20, &data[..count * BLOCK_LEN]);
        // Every fourth response loses its last packet and stays in progress until evicted.
        let lossy = resp % 4 == 0;
        let upto = if lossy { packets.len() - 1 } else { packets.len() };
        for p in &packets[..upto] {
            if let Insert::Complete(c) = r.insert((resp % 7) as u16, u64::from(resp), &video(p)).expect("valid") {
                assert!(c.data == &data[..count * BLOCK_LEN]);
                completes += 1;
            }
            assert!(r.in_progress() <= slots);
        }
        if resp % 50 == 49 {
            r.expire(u64::from(resp) - 10, |inc, _| assert!(inc.request % 4 == 0));
        }
    }
    assert_eq!(completes, 375);
    assert!(r.in_progress() <= slots);
}

#[test]
fn late_packets_of_ended_responses_change_nothing() {
    // Responses 1 to 3 of one block, response 4 of two.
    let data: Vec<Vec<u8>> = (1..=4u8).map(|k| vec![k; if k == 4 { 2 * BLOCK_LEN } else { BLOCK_LEN }]).collect();
    let p: Vec<Vec<Vec<u8>>> = (0..4).map(|k| encode_response(k as u32 + 1, 10 * k as u32, &data[k])).collect();
    let mut r: Reassembler<u8> = Reassembler::new(1);
    let feed = |r: &mut Reassembler<u8>, k: usize, range: std::ops::Range<usize>| {
        let mut completed = false;
        for i in range {
            match r.insert(9, 0, &video(&p[k][i])).expect("valid") {
                Insert::Complete(c) => {
                    assert!(c.data == &data[k][..], "response {} bytes", k + 1);
                    completed = true;
                }
                Insert::Stored { evicted: None } => {}
                other => panic!("response {k} packet {i}: {other:?}"),
            }
        }
        completed
    };

    // Response 1 completes; response 2 then holds the only slot.
    assert!(feed(&mut r, 0, 0..p[0].len()));
    assert!(!feed(&mut r, 1, 0..3));
    // A late copy of response 1's packet neither re-opens it nor evicts response 2.
    assert_eq!(r.insert(9, 1, &video(&p[0][4])), Ok(Insert::Duplicate));
    assert_eq!(r.in_progress(), 1);

    // Response 3 evicts response 2; response 2's remaining packets are then duplicates and do
    // not evict response 3.
    let res = r.insert(9, 2, &video(&p[2][0])).expect("valid");
    assert!(matches!(res, Insert::Stored { evicted: Some(inc) } if inc.request == 2 && inc.complete == 0), "{res:?}");
    for late in &p[1][3..] {
        assert_eq!(r.insert(9, 3, &video(late)), Ok(Insert::Duplicate));
    }
    assert!(feed(&mut r, 2, 1..p[2].len()));
    assert_eq!(r.in_progress(), 0);

    // take() gives up a response on demand, with its bytes; its later packets are duplicates.
    assert!(r.take(9, 4).is_none());
    assert!(!feed(&mut r, 3, 0..8));
    let (inc, bytes) = r.take(9, 4).expect("response 4 in progress");
    assert_eq!((inc.request, inc.first_block, inc.count), (4, 30, 2));
    // Packets 0..=7 cover bytes 0..10360: block 0 is whole, block 1 is not.
    assert_eq!(inc.complete, 0b01);
    let first_diff = bytes.iter().zip(&data[3]).position(|(a, b)| a != b);
    assert_eq!((bytes.len(), first_diff), (2 * BLOCK_LEN, Some(8 * 1295)), "block 0 intact, block 1 partly zero");
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.insert(9, 4, &video(&p[3][0])), Ok(Insert::Duplicate));
}
