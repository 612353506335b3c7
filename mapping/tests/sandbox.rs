//! Evaluator processes under their limits: each limit is hit by a real expression, reported as
//! `MAPPING_LIMIT_EXCEEDED` naming the limit and the part of the mapping, and the pool keeps
//! serving afterwards.

use std::time::{Duration, Instant};

use hookplane_crds::{MappingRule, MappingSpec};
use hookplane_mapping::{Filter, Limit, Limits, MapError, Mapping, Sandbox, SandboxConfig};
use serde_json::{Value, json};

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        program: env!("CARGO_BIN_EXE_hookplane-evaluator").into(),
        args: Vec::new(),
        processes: 2,
        defaults: Limits::default(),
        max: Limits {
            time: Duration::from_secs(10),
            memory: 2 << 30,
            ..Limits::default()
        },
    })
}

fn program(text: &str) -> Mapping {
    Mapping::compile(&MappingSpec {
        rules: Vec::new(),
        program: Some(text.to_owned()),
    })
    .expect("compiles")
}

async fn limit_of(
    sandbox: &Sandbox,
    mapping: &Mapping,
    payload: Value,
    limits: &Limits,
) -> Option<Limit> {
    let result = sandbox
        .map(mapping, &payload, limits)
        .await
        .expect("the sandbox runs");
    result.err().and_then(|error| error.limit())
}

#[tokio::test]
async fn each_limit_is_hit_and_named() {
    let sandbox = sandbox();
    let cases = [
        ("last(range(1e18))", Limit::Time),
        ("[limit(1e9; repeat(1))] | length", Limit::Time),
        ("\"x\" * 1000000000000", Limit::Memory),
        ("\"x\" * (.n | floor)", Limit::Memory),
        ("[range(.n)] | length", Limit::Time),
        ("\"x\" * 3000000", Limit::Output),
    ];
    for (expr, expected) in cases {
        let started = Instant::now();
        let limits = Limits::default();
        let limit = limit_of(&sandbox, &program(expr), json!({"n": 1e10}), &limits).await;
        assert_eq!(limit, Some(expected), "{expr}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{expr} took {:?}",
            started.elapsed()
        );
    }
    // A value too deep to drop overflows the evaluator's stack; building it takes a while and
    // some memory, so this one gets more of both (about 8 s of CPU alone; more when other
    // tests share the cores, since the caches are shared too).
    let slow = Limits {
        time: Duration::from_secs(30),
        memory: 1 << 30,
        ..Limits::default()
    };
    let deep = program("reduce range(3e6) as $i (0; [.]) | length");
    assert_eq!(
        limit_of(&sandbox, &deep, json!({}), &slow).await,
        Some(Limit::Stack)
    );
    // The pool replaced what died and still answers.
    let ok = sandbox
        .map(&program(".a + 1"), &json!({"a": 1}), &Limits::default())
        .await
        .expect("runs");
    assert_eq!(ok, Ok(json!(2)));
}

#[tokio::test]
async fn the_rule_that_exceeds_is_named() {
    let mapping = Mapping::compile(&MappingSpec {
        rules: vec![
            MappingRule {
                target: "Id".into(),
                expr: ".id".into(),
            },
            MappingRule {
                target: "Forever".into(),
                expr: "last(range(1e18))".into(),
            },
        ],
        program: None,
    })
    .expect("compiles");
    let error = sandbox()
        .map(&mapping, &json!({"id": 1}), &Limits::default())
        .await
        .expect("runs")
        .expect_err("exceeds");
    match &error {
        MapError::LimitExceeded {
            limit, location, ..
        } => {
            assert_eq!(*limit, Limit::Time);
            assert_eq!(location, "rules[1] (Forever)");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.code(), "MAPPING_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn filters_and_lowered_limits() {
    let sandbox = sandbox();
    let filter = Filter::compile("[range(1e8)] | length > 0").expect("compiles");
    let lowered = Limits {
        time: Duration::from_millis(20),
        memory: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let result = sandbox
        .filter(&filter, &json!({}), &lowered)
        .await
        .expect("runs");
    let limit = result.expect_err("exceeds").limit();
    assert!(
        matches!(limit, Some(Limit::Memory | Limit::Time)),
        "{limit:?}"
    );
    let keep = Filter::compile("any(.items[]; .qty > 1)").expect("compiles");
    let kept = sandbox
        .filter(&keep, &json!({"items": [{"qty": 2}]}), &lowered)
        .await
        .expect("runs");
    assert_eq!(kept, Ok(true));
}

#[tokio::test]
async fn the_shortcut_answers_in_process_and_declines_what_grows() {
    let limits = Limits::default();
    let simple = program("{Id: .id | tostring, Lines: [.items[] | .sku]}");
    let payload = json!({"id": 7, "items": [{"sku": "A"}, {"sku": "B"}]});
    assert_eq!(
        simple.try_shortcut(&payload, &limits),
        Some(Ok(json!({"Id": "7", "Lines": ["A", "B"]})))
    );
    let doubling = program(&["[.,.]"; 60].join(" | "));
    assert_eq!(doubling.try_shortcut(&json!({"a": 1}), &limits), None);
    let repeated = program("\"x\" * .n");
    assert_eq!(repeated.try_shortcut(&json!({"n": 1e12}), &limits), None);
}

/// An evaluator whose server dies mid-evaluation (here: its parent, killed) does not run on.
#[test]
fn an_evaluator_does_not_outlive_its_server() {
    use std::{
        io::{BufRead, BufReader, Write},
        process::{Command, Stdio},
    };

    // A shell stands in for the server: it starts the evaluator, which then loses its parent.
    let evaluator = env!("CARGO_BIN_EXE_hookplane-evaluator");
    let mut shell = Command::new("sh")
        .arg("-c")
        // The evaluator reads the shell's stdin (fd 3: a background job's own stdin would be
        // /dev/null) and answers into /dev/null; the shell prints the evaluator's pid.
        .arg(format!(
            "exec 3<&0; {evaluator} <&3 >/dev/null & echo $!; wait"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh starts");
    let mut stdout = BufReader::new(shell.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the evaluator's pid");
    let pid: u32 = line.trim().parse().expect("a pid");
    // Keep the evaluator busy for ever, then kill its parent.
    let request = json!({
        "job": { "map": { "rules": [], "program": "last(range(1e18))" } },
        "payload": {},
        "limits": { "time": 600000, "memory": 67108864, "output": 1048576, "depth": 256 },
    });
    let mut stdin = shell.stdin.take().expect("piped");
    writeln!(stdin, "{request}").expect("the request is written");
    std::thread::sleep(Duration::from_millis(500));
    let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists() && !zombie(pid);
    assert!(
        alive(),
        "the evaluator is evaluating before its parent dies"
    );
    shell.kill().expect("the parent is killed");
    let _ = shell.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(), "the orphaned evaluator {pid} is still running");
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Evaluators yield the CPU to their server: each runs ten nice levels below the process that
/// started it, so a loop at its time limit cannot slow intake or the API.
#[test]
fn an_evaluator_runs_below_its_server() {
    use std::{
        io::{BufRead, BufReader},
        process::{Command, Stdio},
    };

    let mut evaluator = Command::new(env!("CARGO_BIN_EXE_hookplane-evaluator"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the evaluator starts");
    let mut ready = String::new();
    BufReader::new(evaluator.stdout.take().expect("piped"))
        .read_line(&mut ready)
        .expect("the evaluator says it is ready");
    let niceness = |pid: u32| -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
        // Fields after the command's closing parenthesis start at field 3 (state); the nice
        // value is field 19.
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        fields[16].parse().expect("a nice value")
    };
    let (ours, its) = (niceness(std::process::id()), niceness(evaluator.id()));
    evaluator.kill().expect("the evaluator is killed");
    let _ = evaluator.wait();
    assert_eq!(
        its,
        (ours + 10).min(19),
        "evaluator nice value (ours: {ours})"
    );
}
