//! The catalog as shipped, read against Runway's own file, and a studio's `models:` merged in.

use std::collections::BTreeMap;

use super::*;

fn yaml(text: &str) -> BTreeMap<String, serde_yaml_ng::Value> {
    serde_yaml_ng::from_str(text).unwrap()
}

/// The (model, endpoint) pairs Runway's file lists as current, read with a plain YAML reader.
fn runway_pairs() -> Vec<(String, String)> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../../assets/runway/runway-models.yaml")).unwrap();
    let mut pairs = Vec::new();
    for (id, m) in doc["models"].as_mapping().unwrap() {
        if m["legacy"].as_bool() == Some(true) {
            continue;
        }
        for (e, _) in m["endpoints"].as_mapping().unwrap() {
            pairs.push((
                id.as_str().unwrap().to_string(),
                e.as_str().unwrap().to_string(),
            ));
        }
    }
    pairs.sort();
    pairs
}

#[test]
fn the_catalog_holds_every_current_model_and_endpoint_of_runways_file() {
    let models = Models::built_in();
    let mut ours: Vec<(String, String)> = models
        .iter()
        .filter(|m| !m.legacy)
        .flat_map(|m| {
            m.endpoints
                .iter()
                .map(|(e, _)| (m.id.clone(), e.key().to_string()))
        })
        .collect();
    ours.sort();
    assert_eq!(ours, runway_pairs());
    // 29 models in Runway's file: 26 current, 3 legacy.
    assert_eq!(models.iter().filter(|m| !m.legacy).count(), 26);
    assert_eq!(models.iter().count(), 29);
    let legacy: Vec<&str> = models
        .iter()
        .filter(|m| m.legacy)
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(legacy, ["gen3a_turbo", "gen4_aleph", "veo3"]);
    let veo3 = models.find("veo3").unwrap();
    assert_eq!(veo3.replaced_by.as_deref(), Some("veo3.1"));
    assert_eq!(veo3.removed_in.as_deref(), Some("5.14.0"));
}

#[test]
fn each_model_keeps_its_own_rules() {
    let m = Models::built_in();
    let rules = |id: &str, e: Endpoint| m.find(id).unwrap().rules(e).unwrap().clone();
    // The video field differs per model.
    let field = |id: &str| rules(id, Endpoint::VideoToVideo).video.unwrap().field;
    assert_eq!(field("aleph2"), "videoUri");
    assert_eq!(field("kling_4"), "videoUri");
    assert_eq!(field("gemini_omni_flash_1.1"), "videoUri");
    assert_eq!(field("seedance2_5"), "promptVideo");
    assert_eq!(field("hailuo3"), "promptVideo");
    assert_eq!(field("klingO3_pro"), "promptVideo");
    // kling text to video: a ratio, no prompt required.
    let k = rules("kling3.0_pro", Endpoint::TextToVideo);
    assert!(k.ratio_required && !k.prompt_required);
    // Tiers, resolutions, auto durations, output formats.
    assert!(
        rules("kling_4", Endpoint::ImageToVideo)
            .ratios
            .unwrap()
            .contains(&"auto_720p".to_string())
    );
    assert_eq!(
        rules("hailuo3", Endpoint::TextToVideo).resolutions.unwrap(),
        ["768p", "2k", "768P", "2K"]
    );
    let s = rules("seedance2", Endpoint::ImageToVideo);
    assert!(s.duration_auto);
    assert_eq!(s.durations, Some(Durations::Range(1, 15)));
    assert_eq!(
        rules("seedance2", Endpoint::VideoToVideo)
            .video
            .unwrap()
            .max_seconds,
        Some(15)
    );
    assert_eq!(
        rules("kling2.5_turbo_pro", Endpoint::TextToVideo).durations,
        Some(Durations::Values(vec![5, 10]))
    );
    assert_eq!(
        rules("wan3", Endpoint::TextToVideo).durations,
        Some(Durations::Any)
    );
    assert!(rules("aleph2", Endpoint::VideoToVideo).durations.is_none());
    assert!(rules("gen4.5", Endpoint::ImageToVideo).output_format);
    let gen45 = m.find("gen4.5").unwrap();
    assert_eq!(gen45.extension(Some("prores")), ".mov");
    assert_eq!(gen45.rate(false, Some("prores")), Some(17));
    assert_eq!(gen45.rate(false, Some("hdr10")), Some(32));
    assert_eq!(m.find("veo3.1").unwrap().rate(true, None), Some(40));
    assert_eq!(m.find("veo3.1").unwrap().rate(false, None), Some(20));
    let last: Vec<&str> = m
        .iter()
        .filter(|x| {
            !x.legacy
                && x.rules(Endpoint::ImageToVideo)
                    .is_some_and(|r| r.last_frame)
        })
        .map(|x| x.id.as_str())
        .collect();
    assert!(last.contains(&"veo3.1") && last.contains(&"kling_4") && !last.contains(&"gen4.5"));
}

#[test]
fn every_ratio_in_the_catalog_reads() {
    for m in Models::built_in().iter().chain([&*LOCAL]) {
        for (e, rules) in &m.endpoints {
            for r in rules.ratios.iter().flatten() {
                assert!(
                    parse_ratio(r).is_some() || Rules::follows_input(r),
                    "{} ({e:?}) has bad ratio {r}",
                    m.id
                );
            }
        }
    }
}

#[test]
fn a_studio_adds_a_model_and_changes_one() {
    let models = Models::with(&yaml(
        "
kling9_ultra:
  credits_per_second: 30
  endpoints:
    image_to_video:
      ratios: ['1920:1080', '1080:1920']
      duration: {values: [5, 10]}
      prompt_image: {last_frame: true}
kling3.0_pro:
  credits_per_second: 20
",
    ))
    .unwrap();
    let new = models.find("kling9_ultra").unwrap();
    assert_eq!(new.origin, Origin::User);
    assert_eq!(new.credits_per_second, Some(30));
    assert!(new.rules(Endpoint::ImageToVideo).unwrap().last_frame);
    let changed = models.find("kling3.0_pro").unwrap();
    assert_eq!(changed.origin, Origin::Overridden);
    assert_eq!(changed.credits_per_second, Some(20));
    // What the entry leaves out stays Runway's.
    assert!(changed.rules(Endpoint::TextToVideo).unwrap().ratio_required);
    assert!(
        models
            .models_for(Endpoint::ImageToVideo)
            .contains(&"kling9_ultra")
    );
}

#[test]
fn a_bad_models_entry_names_the_model_and_the_key() {
    let e = Models::with(&yaml(
        "kling9: {credits_per_second: 5, endpoints: {image_to_video: {ratioz: ['1:1']}}}",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("models.kling9:") && e.contains("ratioz"),
        "{e}"
    );
    let e = Models::with(&yaml("kling9: {credits_per_second: 5}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no endpoints"), "{e}");
    let e = Models::with(&yaml("kling9: {endpoints: {image_to_audio: {}}}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("endpoints.image_to_audio"), "{e}");
    let e = Models::with(&yaml(
        "kling9: {endpoints: {image_to_video: {ratios: ['wide']}}}",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("\"wide\" is not a ratio"), "{e}");
    let e = Models::with(&yaml("gen4.5: {credits_per_second: lots}"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("models.gen4.5:"), "{e}");
}

#[test]
fn nearest_ids_catch_typos() {
    let m = Models::built_in();
    assert_eq!(m.nearest("kling3_pro", 1), ["kling3.0_pro"]);
    assert_eq!(m.nearest("gen45", 1), ["gen4.5"]);
    assert!(m.nearest("zzzzzz", 3).is_empty());
}

#[test]
fn nearest_ratio_follows_the_image() {
    let gen4: Vec<String> = [
        "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(nearest_ratio(&gen4, 1080, 1920), Some("720:1280"));
    assert_eq!(nearest_ratio(&gen4, 3000, 2000), Some("1104:832"));
    assert_eq!(nearest_ratio(&gen4, 1920, 1080), Some("1280:720"));
    assert_eq!(nearest_ratio(&gen4, 500, 500), Some("960:960"));
    assert_eq!(nearest_ratio(&gen4, 3000, 1200), Some("1584:672"));
    assert_eq!(nearest_ratio(&["auto_720p".to_string()], 10, 10), None);
}

#[test]
fn durations() {
    assert!(Durations::Range(2, 10).allows(5));
    assert!(!Durations::Values(vec![8]).allows(5));
    assert_eq!(Durations::Values(vec![4, 6, 8]).nearest(5), 4);
    assert_eq!(Durations::Values(vec![8]).nearest(5), 8);
    assert_eq!(
        Durations::Values(vec![4, 6, 8]).describe(),
        "4, 6 or 8 seconds"
    );
    assert!(Durations::Any.allows(37));
    assert_eq!(Durations::Any.max(), None);
    assert_eq!(
        Catalog::Local.find("gen4.5").map(|m| m.id.as_str()),
        Some("local")
    );
}
