//! Prints the program a fuzz input encodes, to read a crash: `cargo run --example show --
//! peer artifacts/peer/crash-...` (or `tracker FILE`).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, file] = &args[..] else {
        eprintln!("usage: show peer|tracker FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(file).unwrap_or_else(|e| {
        eprintln!("cannot read {file}: {e}");
        std::process::exit(2);
    });
    match target.as_str() {
        "peer" => print(soplab_fuzz::peer::program(&data)),
        "tracker" => print(soplab_fuzz::tracker::program(&data)),
        other => {
            eprintln!("no target {other}: give peer or tracker");
            std::process::exit(2);
        }
    }
}

fn print<S: std::fmt::Debug, O: std::fmt::Debug>(program: Option<(S, Vec<O>)>) {
    let Some((setup, ops)) = program else {
        println!("too short for a setup: runs nothing");
        return;
    };
    println!("{setup:?}");
    for (i, op) in ops.iter().enumerate() {
        println!("{i:3} {op:?}");
    }
}
