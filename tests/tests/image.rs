//! The production build and its image: the dependency tree without the demo's servers, the OCI archive
//! `make image` writes (config, labels, a root filesystem holding the binary alone), the binary run from
//! inside that root filesystem as UID 65532 (static glibc resolving through the pod's /etc/hosts), and the
//! Dockerfile agreeing with `make image`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wufb_e2e::root;

const DEMO_CRATES: [&str; 2] = ["wufb-graph-emulator", "wufb-test-apiserver"];

fn cargo_tree(features: &[&str]) -> String {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args([
            "tree",
            "--locked",
            "-p",
            "wufb-operator",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .args(features)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_production_dependency_tree_holds_neither_demo_server() {
    let lean = cargo_tree(&["--no-default-features"]);
    assert!(lean.lines().any(|l| l.starts_with("wufb-operator ")), "{lean}");
    for krate in DEMO_CRATES {
        assert!(
            !lean.lines().any(|l| l.starts_with(&format!("{krate} "))),
            "the production build links {krate}:\n{lean}"
        );
    }
    // The default build (the checkout's `demo`) does carry them: the feature is what leaves them out.
    let full = cargo_tree(&[]);
    for krate in DEMO_CRATES {
        assert!(
            full.lines().any(|l| l.starts_with(&format!("{krate} "))),
            "{krate} in the demo build"
        );
    }
}

fn archive() -> PathBuf {
    let path = root().join("target/image/wufb-operator.oci.tar");
    assert!(
        path.exists(),
        "{} is missing: `make image` builds it (make test runs it before the tests)",
        path.display()
    );
    path
}

/// The image unpacked: the OCI layout, its index, manifest and config, and the root filesystem.
struct Unpacked {
    dir: PathBuf,
    index: Value,
    config: Value,
    layers: usize,
    rootfs: PathBuf,
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs").join(digest.replace(':', "/"))
}

fn unpack() -> Unpacked {
    let dir = root()
        .join("target/e2e")
        .join(format!("image-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    run(Command::new("tar").arg("-xf").arg(archive()).arg("-C").arg(&dir));
    let json = |p: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let index = json(dir.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one image in the archive: {index}");
    let manifest = json(blob(&dir, manifests[0]["digest"].as_str().unwrap()));
    let config = json(blob(&dir, manifest["config"]["digest"].as_str().unwrap()));
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    for layer in layers {
        run(Command::new("tar")
            .arg("-xf")
            .arg(blob(&dir, layer["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&rootfs));
    }
    Unpacked {
        dir,
        index,
        config,
        layers: layers.len(),
        rootfs,
    }
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        out.push(path.strip_prefix(base).unwrap().display().to_string());
        if entry.file_type().unwrap().is_dir() {
            files_under(&path, base, out);
        }
    }
}

/// The chart's default image, `repository:appVersion`.
fn chart_image() -> String {
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("charts/wufb-operator/values.yaml")).unwrap(),
    )
    .unwrap();
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("charts/wufb-operator/Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        values["image"]["tag"], "",
        "the chart's tag defaults to its appVersion"
    );
    format!(
        "{}:{}",
        values["image"]["repository"].as_str().unwrap(),
        chart["appVersion"].as_str().unwrap()
    )
}

/// What the Dockerfile's final stage declares: labels (ARG defaults substituted), user, entrypoint,
/// and the commands its build stage runs.
struct Dockerfile {
    final_from: String,
    labels: BTreeMap<String, String>,
    user: String,
    entrypoint: Vec<String>,
    runs: Vec<String>,
}

fn dockerfile() -> Dockerfile {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    // Join continued lines, drop comments.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
        } else {
            current.push_str(line);
            instructions.push(std::mem::take(&mut current));
        }
    }
    let mut args = BTreeMap::new();
    let mut d = Dockerfile {
        final_from: String::new(),
        labels: BTreeMap::new(),
        user: String::new(),
        entrypoint: Vec::new(),
        runs: Vec::new(),
    };
    for ins in instructions {
        let (word, rest) = ins.split_once(' ').unwrap_or((&ins, ""));
        let rest = rest.trim();
        match word {
            "FROM" => {
                d.final_from = rest.to_string();
                d.labels.clear();
            }
            "ARG" => {
                if let Some((k, v)) = rest.split_once('=') {
                    args.insert(k.to_string(), v.to_string());
                }
            }
            "RUN" => d.runs.push(rest.to_string()),
            "USER" => d.user = rest.to_string(),
            "ENTRYPOINT" => d.entrypoint = serde_json::from_str(rest).unwrap(),
            "LABEL" => {
                // key="value" pairs; values may hold spaces inside the quotes.
                let mut s = rest;
                while let Some((key, after)) = s.split_once("=\"") {
                    let (value, tail) = after.split_once('"').unwrap();
                    let mut value = value.to_string();
                    for (k, v) in &args {
                        value = value.replace(&format!("${{{k}}}"), v);
                    }
                    d.labels.insert(key.trim().to_string(), value);
                    s = tail;
                }
            }
            _ => {}
        }
    }
    d
}

#[test]
fn the_archive_is_the_chart_default_image_with_the_binary_alone() {
    let image = unpack();
    let name = &image.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"];
    assert_eq!(name.as_str(), Some(chart_image().as_str()), "{}", image.index);

    let config = &image.config["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/wufb-operator"]));
    assert!(config["Cmd"].is_null(), "no default command: {config}");
    assert_eq!(image.config["os"], "linux");

    let mut files = Vec::new();
    files_under(&image.rootfs, &image.rootfs, &mut files);
    assert_eq!(
        files,
        ["wufb-operator"],
        "the binary alone: no shell, nothing in /etc"
    );
    assert_eq!(image.layers, 1);

    // The Dockerfile builds the same image.
    let docker = dockerfile();
    assert_eq!(docker.final_from, "scratch");
    assert_eq!(docker.user, config["User"].as_str().unwrap());
    assert_eq!(docker.entrypoint, ["/wufb-operator"]);
    let labels: BTreeMap<String, String> =
        serde_json::from_value(config["Labels"].clone()).expect("labels are set");
    assert_eq!(
        labels.keys().collect::<Vec<_>>(),
        docker.labels.keys().collect::<Vec<_>>(),
        "the same labels in both"
    );
    for (k, v) in &docker.labels {
        if k != "org.opencontainers.image.revision" {
            assert_eq!(&labels[k], v, "label {k}");
        }
    }
    assert_eq!(
        labels["org.opencontainers.image.version"],
        chart_image().rsplit(':').next().unwrap()
    );
    assert!(
        docker.runs.iter().any(|r| r.contains("scripts/static-binary.sh")),
        "the Dockerfile builds with the script make image uses"
    );
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    assert!(makefile.contains("bin=\"$$(scripts/static-binary.sh)\""));

    // A static executable: no program interpreter (dynamic loader) to find in an empty image.
    let bin = std::fs::read(image.rootfs.join("wufb-operator")).unwrap();
    assert_eq!(&bin[..4], b"\x7fELF");
    let phoff = u64::from_le_bytes(bin[0x20..0x28].try_into().unwrap()) as usize;
    let phentsize = u16::from_le_bytes(bin[0x36..0x38].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(bin[0x38..0x3a].try_into().unwrap()) as usize;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let kind = u32::from_le_bytes(bin[at..at + 4].try_into().unwrap());
        assert_ne!(kind, 3, "PT_INTERP: the binary needs a dynamic loader");
    }
    let archive_bytes = std::fs::metadata(archive()).unwrap().len();
    println!(
        "image archive {:.1} MiB, binary {:.1} MiB",
        archive_bytes as f64 / 1048576.0,
        bin.len() as f64 / 1048576.0
    );
    assert!(archive_bytes < 40 << 20, "image archive is {archive_bytes} bytes");
    std::fs::remove_dir_all(&image.dir).unwrap();
}

/// Runs the image's binary inside its root filesystem as 65532:65532 (chroot needs root: as root, else
/// through passwordless sudo as CI runners have, else in a user namespace that maps this user to root).
fn in_image(rootfs: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let (prefix, userspec): (&[&str], bool) = if is_root() {
        (&[], true)
    } else if Command::new("sudo")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        (&["sudo", "-n"], true)
    } else {
        // Only this user is mapped in the namespace: the binary runs as its root there.
        (&["unshare", "--user", "--map-root-user"], false)
    };
    // `env -i` hands the binary exactly `env`, whichever way chroot is reached.
    let mut line: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    line.extend(["env".into(), "-i".into()]);
    line.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    line.push(chroot_path());
    if userspec {
        line.push("--userspec=65532:65532".into());
    }
    line.push(rootfs.display().to_string());
    line.push("/wufb-operator".into());
    line.extend(args.iter().map(|s| s.to_string()));
    Command::new(&line[0])
        .args(&line[1..])
        .output()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// Where `chroot` is (often in an sbin directory outside an unprivileged PATH); `env -i` cannot search.
fn chroot_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join("chroot"))
        .find(|p| p.exists())
        .expect("chroot (coreutils) is installed")
        .display()
        .to_string()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_binary_runs_from_its_own_root_filesystem() {
    let image = unpack();
    let rootfs = &image.rootfs;
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let version = in_image(rootfs, &["--version"], &[]);
    assert!(version.status.success(), "{}", text(&version));
    assert!(text(&version).starts_with("wufb-operator "), "{}", text(&version));

    let crds = in_image(rootfs, &["crdgen", "--stdout"], &[]);
    assert!(crds.status.success(), "{}", text(&crds));
    let printed = String::from_utf8_lossy(&crds.stdout).to_string();
    let expected = std::fs::read_to_string(root().join("crds/expediteddeployments.wufb.dev.yaml")).unwrap();
    assert!(
        printed.contains(expected.trim()),
        "crdgen in the image prints the CRDs of crds/"
    );

    let demo = in_image(rootfs, &["demo"], &[]);
    assert!(!demo.status.success());
    assert!(text(&demo).contains("this build has no demo"), "{}", text(&demo));

    // The pod's mounted name files, as the kubelet provides them; nothing else is added. Plain http is
    // allowed only to a loopback name, so the name is `localhost`: the first run finds the emulator
    // through the chroot's /etc/hosts, the second proves that file is what answered (it points the name
    // at an address nothing listens on, and the same command then fails to connect).
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(
        rootfs.join("etc/resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    let manifest = "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: emergency\n  namespace: it\nspec:\n  content:\n    latest: true\n  audience:\n    members:\n    - device: 6f1c2a10-7d4b-4c8e-9a1f-0b2c3d4e5f01\n";
    std::fs::create_dir_all(rootfs.join("work")).unwrap();
    std::fs::write(rootfs.join("work/rollout.yaml"), manifest).unwrap();

    let emulator = wufb_graph_emulator::Emulator::start(Default::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let graph = format!("http://localhost:{}/beta", emulator.addr.port());
    let plan = |hosts: &str| {
        std::fs::write(rootfs.join("etc/hosts"), hosts).unwrap();
        let rootfs = rootfs.clone();
        let graph = graph.clone();
        tokio::task::spawn_blocking(move || {
            in_image(
                &rootfs,
                &[
                    "plan",
                    "--offline",
                    "-f",
                    "/work/rollout.yaml",
                    "--graph-url",
                    &graph,
                ],
                &[
                    ("AZURE_TENANT_ID", wufb_graph_emulator::config::DEFAULT_TENANT_ID),
                    ("AZURE_CLIENT_ID", wufb_graph_emulator::config::DEFAULT_CLIENT_ID),
                    (
                        "AZURE_CLIENT_SECRET",
                        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
                    ),
                ],
            )
        })
    };
    let found = plan("127.0.0.1 localhost\n").await.unwrap();
    // 2: the plan would change the tenant (it names a new deployment).
    assert_eq!(found.status.code(), Some(2), "{}", text(&found));
    assert!(text(&found).contains("create"), "{}", text(&found));
    let requests = emulator.requests();
    assert!(
        requests.iter().any(|r| r.path.contains("/catalog/entries")),
        "the binary in the image reached Graph by name: {requests:?}"
    );
    assert!(!text(&found).contains(wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET));

    let before = emulator.requests().len();
    let elsewhere = plan("127.0.0.9 localhost\n").await.unwrap();
    assert!(!elsewhere.status.success(), "{}", text(&elsewhere));
    assert_eq!(emulator.requests().len(), before, "nothing reached the emulator");
    std::fs::remove_dir_all(&image.dir).unwrap();
}
