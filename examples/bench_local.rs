//! Benchmark of the local renderer: a 5 s, 1280×720, 24 fps push-in from a 3000×2000 JPEG.
//!
//! `cargo run --release --example bench_local [RUNS] [--grain] [--big] [--seconds N]` prints a markdown table: median wall time and
//! peak RSS over RUNS (default 5) renders, each in a fresh child process, the mean and worst luma
//! PSNR of the decoded frames against the frames fed to the encoder, and — when `ffmpeg` is on the
//! PATH — the same figures for the recipe a user would otherwise run: `zoompan` + `libx264`
//! (`-preset veryfast -crf 20`, the source scaled up first so the move does not jitter).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use dropreel::backend::local::encode::write_mp4;
use dropreel::backend::local::render::{Plan, Renderer};
use dropreel::job::Motion;
use dropreel::media::frames::Mp4Video;

/// The clip's length: 5 s, or `--seconds N` (passed to the child processes in the environment).
fn seconds() -> u32 {
    std::env::var("DROPREEL_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

fn plan() -> Plan {
    Plan::new(1280, 720, 24, seconds(), Motion::PushIn, 1.5, 42)
}

/// A 3000×2000 photo-like JPEG: gradients, shapes and fine noise (which is what costs bits).
fn make_source(path: &Path, grain: f32, (w, h): (u32, u32)) {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed >> 58) as f32 - 32.0;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let sky = [90.0 + 120.0 * fy, 140.0 + 80.0 * fy, 220.0 - 60.0 * fy];
        let hill = 0.6 + 0.08 * (fx * 11.0).sin() + 0.03 * (fx * 53.0).sin();
        // Foliage-like texture on the land (wavelengths of 4–40 source pixels), soft clouds above.
        let (xf, yf) = (x as f32, y as f32);
        let texture: f32 = [
            (4.3, 0.3, 9.0),
            (6.1, 1.9, 8.0),
            (9.7, 2.8, 7.0),
            (15.0, 0.9, 6.0),
            (23.0, 2.2, 5.0),
            (39.0, 1.4, 5.0),
        ]
        .iter()
        .map(|&(l, a, amp)| amp * ((xf * f32::cos(a) + yf * f32::sin(a)) / l + a * 7.0).sin())
        .sum();
        let clouds = 12.0 * ((xf / 180.0).sin() * (yf / 70.0 + xf / 400.0).cos());
        let mut c = if fy > hill {
            [
                60.0 + 40.0 * fx + texture,
                110.0 - 30.0 * fy + texture * 1.2,
                50.0 + texture * 0.6,
            ]
        } else {
            [sky[0] + clouds, sky[1] + clouds, sky[2] + clouds * 0.5]
        };
        let d = ((fx - 0.7).powi(2) + (fy - 0.3).powi(2)).sqrt();
        if d < 0.08 {
            c = [250.0, 220.0, 150.0];
        }
        if ((x / 150) + (y / 150)) % 7 == 0 && fy > hill {
            c = [c[0] * 0.6, c[1] * 0.6, c[2] * 0.6];
        }
        image::Rgb(c.map(|v| (v + n * grain).clamp(0.0, 255.0) as u8))
    });
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
}

/// Peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One render in this (child) process; prints "seconds rss_kib".
fn child(src: &Path, out: &Path) {
    let t = Instant::now();
    let r = Renderer::open(src, plan()).unwrap();
    write_mp4(r, out, &AtomicBool::new(false)).unwrap();
    println!("{} {}", t.elapsed().as_secs_f64(), peak_rss_kib());
}

/// Mean and worst luma PSNR of `mp4`'s decoded frames against the frames the renderer made.
fn psnr_against_input(src: &Path, mp4: &Path) -> (f64, f64, usize) {
    let mut video = Mp4Video::open(mp4).unwrap();
    let mut renderer = Renderer::open(src, plan()).unwrap();
    let (w, h) = (1280usize, 720usize);
    let mut fed = Vec::new();
    let mut scores = Vec::new();
    video
        .decode(1..=video.frame_count(), |frame| {
            renderer.render_i420(scores.len() as u32, &mut fed);
            let mut se = 0.0f64;
            for row in 0..h {
                let a = frame.luma_row(row);
                let b = &fed[row * w..(row + 1) * w];
                se += a
                    .iter()
                    .zip(b)
                    .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                    .sum::<f64>();
            }
            let mse = se / (w * h) as f64;
            scores.push(if mse == 0.0 {
                99.0
            } else {
                10.0 * (255.0f64 * 255.0 / mse).log10()
            });
        })
        .unwrap();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let worst = scores.iter().copied().fold(f64::INFINITY, f64::min);
    (mean, worst, scores.len())
}

/// The ffmpeg recipe, timed with /usr/bin/time; (seconds, rss_kib).
fn ffmpeg_run(src: &Path, out: &Path, preset: &str) -> Option<(f64, u64)> {
    let vf = "scale=8000:-1,zoompan=z='min(zoom+0.0042,1.5)':d=120:x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':s=1280x720:fps=24";
    let o = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", "ffmpeg", "-v", "error", "-y", "-i"])
        .arg(src)
        .args([
            "-vf",
            vf,
            "-frames:v",
            "120",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-crf",
            "20",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(out)
        .output()
        .ok()?;
    if !o.status.success() {
        eprintln!("ffmpeg failed: {}", String::from_utf8_lossy(&o.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&o.stderr);
    let last = text.lines().last()?;
    let mut it = last.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(Path::new(&args[2]), Path::new(&args[3]));
        return;
    }
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    if let Some(n) = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
    {
        // SAFETY: set before any other thread exists; read by this process and its children.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("DROPREEL_BENCH_SECONDS", n)
        };
    }
    // --grain: heavy sensor noise (std ≈ 9 levels), the hardest case for the encoder.
    let grain = if args.iter().any(|a| a == "--grain") {
        0.5
    } else {
        0.15
    };
    // --big: a 24 MP (6000×4000) source, to show memory stays bounded.
    let dims = if args.iter().any(|a| a == "--big") {
        (6000, 4000)
    } else {
        (3000, 2000)
    };
    let dir = tempfile::tempdir().unwrap();
    let src: PathBuf = dir.path().join("source.jpg");
    make_source(&src, grain, dims);
    let out = dir.path().join("out.mp4");
    let me = std::env::current_exe().unwrap();

    let (mut times, mut rss) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let o = Command::new(&me)
            .arg("child")
            .arg(&src)
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let line = String::from_utf8_lossy(&o.stdout);
        let mut it = line.split_whitespace();
        times.push(it.next().unwrap().parse::<f64>().unwrap());
        rss.push(it.next().unwrap().parse::<f64>().unwrap() / 1024.0);
    }
    let bytes = std::fs::metadata(&out).unwrap().len();
    let (mean, worst, frames) = psnr_against_input(&src, &out);
    let ours_t = median(times);
    let ours_m = median(rss);

    println!("| recipe | median wall time | peak RSS | output | luma PSNR vs encoder input |");
    println!("|---|---|---|---|---|");
    println!(
        "| dropreel local (OpenH264, {:.1} Mbit/s target) | {ours_t:.2} s | {ours_m:.0} MiB | {:.2} MB, {frames} frames | mean {mean:.1} dB, worst {worst:.1} dB |",
        dropreel::backend::local::encode::bitrate_for(1280, 720, 24) as f64 / 1e6,
        bytes as f64 / 1e6
    );
    let has_ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_ffmpeg {
        println!("\n(ffmpeg is not installed: comparison skipped)");
        return;
    }
    if seconds() != 5 {
        println!("\n(the ffmpeg recipe renders 5 s only: comparison skipped)");
        return;
    }
    for preset in ["veryfast", "medium"] {
        let ff_out = dir.path().join(format!("ff-{preset}.mp4"));
        let mut ft = Vec::new();
        let mut fm = Vec::new();
        for _ in 0..runs {
            if let Some((t, m)) = ffmpeg_run(&src, &ff_out, preset) {
                ft.push(t);
                fm.push(m as f64 / 1024.0);
            }
        }
        if ft.is_empty() {
            continue;
        }
        let (t, m) = (median(ft), median(fm));
        let size = std::fs::metadata(&ff_out).map(|m| m.len()).unwrap_or(0);
        println!(
            "| ffmpeg zoompan + libx264 -preset {preset} -crf 20 | {t:.2} s | {m:.0} MiB | {:.2} MB | – |",
            size as f64 / 1e6
        );
        if preset == "veryfast" {
            println!("\nspeed-up over ffmpeg veryfast: {:.2}×", t / ours_t);
        }
    }
}
