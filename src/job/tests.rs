//! Tests of the job spec's builder: every kind, the defaults, presets and sidecars, and each refusal.

use super::*;

fn img(w: u32, h: u32) -> ImageInfo {
    ImageInfo {
        format: ImageFormat::Png,
        width: w,
        height: h,
    }
}

fn build(yaml: &str, w: u32, h: u32) -> Result<JobSpec, String> {
    let sc = parse_sidecar(yaml)?;
    JobSpec::build(
        &Defaults::default(),
        &sc,
        Input::Image(&img(w, h)),
        &Catalog::Runway(models::Models::built_in()),
    )
}

#[test]
fn bare_string_is_the_prompt() {
    let s = build("a cat walks slowly", 1920, 1080).unwrap();
    assert_eq!(s.prompt, "a cat walks slowly");
    assert_eq!(s.ratio.as_deref(), Some("1280:720"));
    assert_eq!(s.duration, 5);
    assert_eq!(s.model, "gen4_turbo");
}

#[test]
fn portrait_gets_portrait_ratio() {
    let s = build("", 1080, 1920).unwrap();
    assert_eq!(s.ratio.as_deref(), Some("720:1280"));
}

#[test]
fn errors_name_offered_values() {
    let e = build("ratio: \"1280:768\"", 100, 100).unwrap_err();
    assert!(e.contains("1280:768") && e.contains("960:960"), "{e}");
    let e = build("ratio: \"16:9\"", 100, 100).unwrap_err();
    assert!(e.contains("pixel sizes"), "{e}");
    let e = build("model: veo3.1\nduration: 5", 100, 100).unwrap_err();
    assert!(e.contains("4, 6 or 8 seconds"), "{e}");
    let e = build("model: veo3", 100, 100).unwrap_err();
    assert!(
        e.contains("no longer offered") && e.contains("use veo3.1"),
        "{e}"
    );
    let e = build("model: kling3_pro", 100, 100).unwrap_err();
    assert!(
        e.contains("Did you mean kling3.0_pro") && e.contains("`models:`"),
        "{e}"
    );
    let e = build("model: aleph2", 100, 100).unwrap_err();
    assert!(
        e.contains("does not animate images") && e.contains("gen4_turbo"),
        "{e}"
    );
    let e = build("model: gen4.5", 100, 100).unwrap_err();
    assert!(e.contains("needs a prompt"), "{e}");
    let e = build("seed: 4294967296", 100, 100).unwrap_err();
    assert!(e.contains("out of range"), "{e}");
    let e = build("model: happyhorse_1_0\nseed: 3", 100, 100).unwrap_err();
    assert!(
        e.contains("does not take a seed") && e.contains("gen4.5"),
        "{e}"
    );
}

#[test]
fn local_jobs_take_their_move_from_the_prompt_or_the_sidecar() {
    let local = |yaml: &str| {
        JobSpec::build(
            &Defaults::default(),
            &parse_sidecar(yaml).unwrap(),
            Input::Image(&img(300, 200)),
            &Catalog::Local,
        )
    };
    let s = local("a slow pan-left across the harbour").unwrap();
    assert_eq!(
        (s.model.as_str(), s.motion.as_deref(), s.zoom),
        ("local", Some("pan_left"), Some(1.25))
    );
    assert_eq!(local("").unwrap().motion.as_deref(), Some("push_in"));
    // A sidecar written for a Runway model's resolution and format still renders locally.
    let s = local("model: gen4.5\nresolution: 1080p\noutput_format: prores").unwrap();
    assert_eq!(
        (s.resolution, s.output_format, s.output_ext),
        (None, None, None)
    );
    assert_eq!(
        local("zoom out, then tilt up").unwrap().motion.as_deref(),
        Some("pull_out")
    );
    assert_eq!(
        local("Locked-off shot").unwrap().motion.as_deref(),
        Some("static")
    );
    assert_eq!(
        local("prompt: zoom in\nmotion: tilt-down\nzoom: 1.6")
            .unwrap()
            .zoom,
        Some(1.6)
    );
    assert_eq!(
        local("motion: tilt_down").unwrap().motion.as_deref(),
        Some("tilt_down")
    );
    let e = local("motion: orbit").unwrap_err();
    assert!(
        e.contains("orbit") && e.contains("push_in, pull_out"),
        "{e}"
    );
    assert!(local("zoom: 3").unwrap_err().contains("1.0 to 2.0"));
    assert_eq!(local("duration: 20").unwrap().duration, 20);
    assert!(local("duration: 21").unwrap_err().contains("1 to 20"));
    assert_eq!(local("").unwrap().ratio.as_deref(), Some("1104:832"));
    assert!(
        local("model: veo3\nratio: \"1080:1920\"")
            .unwrap_err()
            .contains("not offered by local")
    );
}

#[test]
fn default_duration_follows_the_model() {
    assert_eq!(
        build("model: kling2.5_turbo_pro\nprompt: x", 10, 10)
            .unwrap()
            .duration,
        5
    );
    assert_eq!(
        build("model: gen4.5\nprompt: x", 10, 10).unwrap().duration,
        5
    );
    assert_eq!(build("model: veo3.1", 10, 10).unwrap().duration, 4);
}

#[test]
fn prompt_length_counts_utf16_units() {
    // 500 emoji = 1000 UTF-16 units: fits; 501 does not (while only 501 chars).
    let ok = format!("prompt: \"{}\"", "😀".repeat(500));
    assert!(build(&ok, 10, 10).is_ok());
    let long = format!("prompt: \"{}\"", "😀".repeat(501));
    let e = build(&long, 10, 10).unwrap_err();
    assert!(e.contains("1002"), "{e}");
}

#[test]
fn the_example_sidecars_are_valid() {
    let full = build(
        include_str!("../../examples/sidecars/full.yaml"),
        1920,
        1080,
    )
    .unwrap();
    assert_eq!(
        (full.model.as_str(), full.duration, full.seed),
        ("gen4.5", 8, Some(1234))
    );
    assert!(full.extra.contains_key("contentModeration"));
    let short = build(
        include_str!("../../examples/sidecars/prompt-only.yaml"),
        10,
        10,
    )
    .unwrap();
    assert!(short.prompt.starts_with("slow push-in"));
}

// See: issue 9, item 10 — a bare parser error for `prompt: close-up: a cat`, and only the
// first of several problems reported.
#[test]
fn every_problem_of_a_sidecar_is_reported_and_colons_get_a_hint() {
    let e = parse_sidecar("prompt: close-up: a cat yawns\n").unwrap_err();
    assert!(e.contains("put in quotes") && e.contains("\": \""), "{e}");
    let e = parse_sidecar("promt: hi\nduration: 5s\nseed: lots\n").unwrap_err();
    assert!(e.starts_with("3 problems"), "{e}");
    assert!(
        e.contains("promt") && e.contains("line 2") && e.contains("whole number of seconds"),
        "{e}"
    );
    assert!(e.contains("seed") && e.contains("line 3"), "{e}");
    let e = build(
        "model: gen4_turbo\nratio: \"16:9\"\nduration: 42\nzoom: 9\n",
        100,
        100,
    )
    .unwrap_err();
    assert!(
        e.starts_with("3 problems")
            && e.contains("16:9")
            && e.contains("duration 42")
            && e.contains("zoom 9"),
        "{e}"
    );
}

// See: issue 23, items 1 and 5.
#[test]
fn resolution_and_output_format_are_checked_against_the_model() {
    let e = build("model: grok_imagine_1_5\nresolution: 4k", 100, 100).unwrap_err();
    assert!(
        e.contains("resolution 4k is not offered by grok_imagine_1_5; use 480p, 720p or 1080p"),
        "{e}"
    );
    let s = build("model: happyhorse_1_0\nresolution: 1080P", 100, 100).unwrap();
    assert_eq!(s.resolution.as_deref(), Some("1080p"));
    let e = build("resolution: 720p", 100, 100).unwrap_err();
    assert!(e.contains("gen4_turbo takes no `resolution`"), "{e}");
    let e = build("output_format: prores", 100, 100).unwrap_err();
    assert!(e.contains("gen4_turbo takes no `output_format`"), "{e}");
    let s = build("model: gen4.5\nprompt: x\noutput_format: prores", 100, 100).unwrap();
    assert_eq!(
        (
            s.output_format.as_deref(),
            s.output_ext.as_deref(),
            s.catalog_rate
        ),
        (Some("prores"), Some("mov"), Some(17)),
        "prores is a .mov at 12 + 5 credits a second"
    );
    let s = build("model: gen4.5\nprompt: x\noutput_format: hdr10", 100, 100).unwrap();
    assert_eq!((s.output_ext, s.catalog_rate), (None, Some(32)));
    let e = build(
        "model: gen4.5\nprompt: x\noutput_format: png_sequence",
        100,
        100,
    )
    .unwrap_err();
    assert!(
        e.contains("makes a .zip of frames") && e.contains("prores"),
        "{e}"
    );
    let s = build("model: gen4.5\nprompt: x\noutput_format: mp4", 100, 100).unwrap();
    assert_eq!(s.output_format, None);
    // duration: auto where the model takes it, priced at its longest.
    let s = build("model: seedance2\nduration: auto", 100, 100).unwrap();
    assert!(s.duration_auto && s.duration == 15 && s.catalog_rate == Some(36));
    let e = build("duration: auto", 100, 100).unwrap_err();
    assert!(e.contains("does not take `duration: auto`"), "{e}");
}
