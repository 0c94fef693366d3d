//! Out of file descriptors, the accept loop pauses between attempts rather
//! than spinning: the test runs itself again as a child process whose
//! descriptor limit (`ulimit -n`) it then uses up, so `accept` really
//! fails with `EMFILE` while a client waits in the accept queue, and counts
//! the "accept failed" warnings the listener logs in one second.

mod proxy_support;

use proxy_support::{AnyError, Log};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD: &str = "CORSAIR_TEST_EMFILE_CHILD";
const NAME: &str = "accept_errors_pause_instead_of_spinning";
/// How long the child serves while out of descriptors.
const WINDOW: Duration = Duration::from_secs(1);

#[test]
fn accept_errors_pause_instead_of_spinning() -> Result<(), AnyError> {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" --exact "$1" --nocapture --test-threads=1"#)
        .arg(std::env::current_exe()?)
        .arg(NAME)
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    // The harness may print `test <name> ... ` before a line on the same
    // line, so the prefix is looked for anywhere in it.
    let mut value = |prefix: &str| -> Result<String, AnyError> {
        for line in lines.by_ref() {
            if let Some((_, v)) = line?.split_once(prefix) {
                return Ok(v.trim().to_owned());
            }
        }
        Err(format!("the child never printed {prefix:?}").into())
    };
    let addr: std::net::SocketAddr = value("listening ")?.parse()?;
    // Waits in the accept queue: the child cannot accept it.
    let _client = std::net::TcpStream::connect(addr)?;
    child.stdin.as_mut().ok_or("no stdin")?.write_all(b"go\n")?;
    let errors: usize = value("accept errors ")?.parse()?;
    let status = child.wait()?;
    assert!(status.success(), "child: {status}");
    // One per pause (100 ms) and a few more at the edges; a loop that
    // retries at once logs thousands.
    assert!(
        (1..=20).contains(&errors),
        "{errors} accept errors logged in {WINDOW:?}"
    );
    Ok(())
}

/// The child: a listener, then every free descriptor taken, then the
/// authz endpoint's accept loop for [`WINDOW`].
fn child() -> Result<(), AnyError> {
    let (log, _guard) = Log::capture(tracing::Level::WARN);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let mut go = String::new();
        std::io::stdin().read_line(&mut go)?;
        let mut held = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            held.push(file);
        }
        let authz = corsair_agent::authz::Authz::new(corsair_agent::handle::PolicyHandle::new());
        corsair_agent::authz::serve(
            listener,
            authz,
            Duration::from_millis(100),
            Duration::from_secs(30),
            tokio::time::sleep(WINDOW),
        )
        .await?;
        drop(held);
        let errors = log.text().matches("accept failed").count();
        println!("accept errors {errors}");
        Ok::<_, AnyError>(())
    })
}
