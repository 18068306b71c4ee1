//! The `[[toxics]]` TOML: a valid table parses; every mistake is a load-time error
//! naming the valid values or ranges.

use sse_toxics::{
    Latency, ProxyPath, SpecErrorKind, StallMode, Stream, Timeout, Toxic, ToxicConfig, WindowClock,
    for_path, parse_toml,
};

fn err(toml: &str) -> (SpecErrorKind, String) {
    let e = parse_toml(toml).expect_err("should not parse");
    (e.kind, e.message)
}

#[test]
fn a_full_table_parses_with_units_and_defaults() {
    let specs = parse_toml(
        r#"
        [[toxics]]
        path = "subscriber"
        kind = "latency"
        latency = 400
        jitter = 50
        stream = "downstream"
        toxicity = 0.5
        from_ms = 2000
        until_ms = 6000

        [[toxics]]
        path = "publisher"
        kind = "reset_peer"
        direction = "downstream"
        timeout = 0

        [[toxics]]
        path = "publisher"
        kind = "slicer"
        average_size = 64
        size_variation = 16
        delay = 100
        stream = "upstream"

        [[toxics]]
        path = "subscriber"
        kind = "bandwidth"
        rate = 1

        [[toxics]]
        path = "subscriber"
        kind = "timeout"
        timeout = 0
        name = "black hole"
        toxicity = 1

        [[toxics]]
        path = "subscriber"
        kind = "slow_close"
        delay = 10

        [[toxics]]
        path = "publisher"
        kind = "limit_data"
        bytes = 100
        "#,
    )
    .unwrap();
    assert_eq!(specs.len(), 7);
    assert_eq!(specs[0].path, ProxyPath::Subscriber);
    assert_eq!(
        specs[0].toxic,
        ToxicConfig {
            name: None,
            toxic: Toxic::Latency(Latency {
                latency: 400,
                jitter: 50
            }),
            stream: Stream::Downstream,
            toxicity: 0.5,
            from_ms: 2000,
            until_ms: Some(6000),
            clock: WindowClock::Origin,
        }
    );
    assert_eq!(specs[0].toxic.name(), "latency_downstream");
    assert_eq!(
        specs[3].toxic.stream,
        Stream::Downstream,
        "toxiproxy's default"
    );
    assert_eq!(specs[3].toxic.toxicity, 1.0);
    assert_eq!(specs[4].toxic.name(), "black hole");
    assert_eq!(for_path(&specs, ProxyPath::Publisher).len(), 3);
}

#[test]
fn an_unknown_kind_lists_the_known_ones() {
    let (kind, msg) = err("[[toxics]]\npath = \"publisher\"\nkind = \"lag\"\nlatency = 1\n");
    assert_eq!(kind, SpecErrorKind::Parse);
    for k in sse_toxics::KNOWN {
        assert!(msg.contains(k), "{msg}");
    }
}

#[test]
fn an_unknown_path_or_stream_names_the_valid_values() {
    let (_, msg) = err("[[toxics]]\npath = \"pub\"\nkind = \"latency\"\nlatency = 1\n");
    assert!(
        msg.contains("publisher") && msg.contains("subscriber"),
        "{msg}"
    );
    let (_, msg) =
        err("[[toxics]]\npath = \"publisher\"\nkind = \"latency\"\nlatency = 1\nstream = \"up\"\n");
    assert!(
        msg.contains("upstream") && msg.contains("downstream"),
        "{msg}"
    );
}

#[test]
fn a_window_counts_from_the_origin_by_default_or_from_going_live_and_a_typo_names_both() {
    let toxic = |extra: &str| {
        let toml = format!(
            "[[toxics]]\npath = \"subscriber\"\nkind = \"reset_peer\"\nfrom_ms = 3000\nuntil_ms = 3700\n{extra}"
        );
        parse_toml(&toml).unwrap().remove(0).toxic
    };
    let origin = toxic("");
    assert_eq!(origin.clock, WindowClock::Origin);
    assert_eq!(origin.window_on_origin(None), Some((3000, Some(3700))));
    assert!(origin.live_at_origin_ms(3000, None));
    let live = toxic("clock = \"live\"\n");
    assert_eq!(live.clock, WindowClock::Live);
    assert_eq!(
        live.window_on_origin(None),
        None,
        "never live, never applied"
    );
    assert_eq!(live.window_on_origin(Some(5000)), Some((8000, Some(8700))));
    assert!(!live.live_at_origin_ms(3000, None));
    assert!(!live.live_at_origin_ms(3000, Some(5000)));
    assert!(live.live_at_origin_ms(8000, Some(5000)));
    assert!(!live.live_at_origin_ms(8700, Some(5000)));
    let (kind, msg) =
        err("[[toxics]]\npath = \"subscriber\"\nkind = \"reset_peer\"\nclock = \"alive\"\n");
    assert_eq!(kind, SpecErrorKind::Parse);
    assert!(msg.contains("origin") && msg.contains("live"), "{msg}");
}

#[test]
fn a_misspelt_attribute_names_the_valid_ones() {
    let (kind, msg) = err("[[toxics]]\npath = \"publisher\"\nkind = \"latency\"\nlatncy = 1\n");
    assert_eq!(kind, SpecErrorKind::Parse);
    assert!(msg.contains("latncy") && msg.contains("jitter"), "{msg}");
}

#[test]
fn a_timeout_mode_is_discard_by_default_hold_on_request_and_a_typo_names_both() {
    let toxic = |extra: &str| {
        let toml = format!("[[toxics]]\npath = \"subscriber\"\nkind = \"timeout\"\n{extra}");
        parse_toml(&toml).unwrap()[0].toxic.toxic
    };
    let discard = Timeout {
        timeout: 0,
        mode: StallMode::Discard,
    };
    assert_eq!(toxic(""), Toxic::Timeout(discard));
    let hold = Timeout {
        timeout: 0,
        mode: StallMode::Hold,
    };
    assert_eq!(toxic("mode = \"hold\"\n"), Toxic::Timeout(hold));
    let (kind, msg) =
        err("[[toxics]]\npath = \"subscriber\"\nkind = \"timeout\"\nmode = \"hodl\"\n");
    assert_eq!(kind, SpecErrorKind::Parse);
    assert!(msg.contains("discard") && msg.contains("hold"), "{msg}");
}

#[test]
fn ranges_are_checked_and_named() {
    let base = "[[toxics]]\npath = \"publisher\"\n";
    let (kind, msg) = err(&format!(
        "{base}kind = \"latency\"\nlatency = 1\ntoxicity = 1.5\n"
    ));
    assert_eq!(kind, SpecErrorKind::Toxicity);
    assert!(msg.contains("0.0..=1.0"), "{msg}");
    let (kind, msg) = err(&format!(
        "{base}kind = \"latency\"\nlatency = 1\nfrom_ms = 500\nuntil_ms = 500\n"
    ));
    assert_eq!(kind, SpecErrorKind::Window);
    assert!(msg.contains("greater than from_ms"), "{msg}");
    let (kind, msg) = err(&format!(
        "{base}kind = \"slicer\"\naverage_size = 10\nsize_variation = 10\n"
    ));
    assert_eq!(kind, SpecErrorKind::Attribute);
    assert!(
        msg.contains("size_variation") && msg.contains("smaller than average_size"),
        "{msg}"
    );
    let (kind, msg) = err(&format!("{base}kind = \"bandwidth\"\nrate = 0\n"));
    assert_eq!(kind, SpecErrorKind::Attribute);
    assert!(msg.contains("KB/s"), "{msg}");
    let (kind, msg) = err(&format!("{base}kind = \"latency\"\nlatency = 3600001\n"));
    assert_eq!(kind, SpecErrorKind::Attribute);
    assert!(msg.contains("milliseconds"), "{msg}");
}

#[test]
fn two_toxics_with_one_name_on_one_path_are_refused() {
    let one = "[[toxics]]\npath = \"publisher\"\nkind = \"latency\"\nlatency = 1\n";
    let (kind, msg) = err(&format!("{one}{one}"));
    assert_eq!(kind, SpecErrorKind::DuplicateName);
    assert!(msg.contains("latency_downstream"), "{msg}");
    // The same name on the two paths is fine: they are two proxies.
    let other = one.replace("publisher", "subscriber");
    assert_eq!(parse_toml(&format!("{one}{other}")).unwrap().len(), 2);
}
