//! Property tests of everything dropreel parses from files others write: sidecars, the config and
//! the job state file. Arbitrary bytes never panic; every valid spec survives a round trip.

use dropreel::config;
use dropreel::job::models;
use dropreel::job::{self, ImageFormat, ImageInfo, JobSpec, Sidecar};
use dropreel::studio::spool::JobRecord;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_sidecar_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = job::parse_sidecar(&text);
    }

    #[test]
    fn yaml_shaped_sidecars_never_panic(
        keys in proptest::collection::vec("(prompt|promptText|model|duration|ratio|seed|motion|zoom|extra|promt)", 0..6),
        values in proptest::collection::vec("[ -~]{0,20}", 0..6),
    ) {
        let text: String = keys.iter().zip(values.iter()).map(|(k, v)| format!("{k}: {v}\n")).collect();
        if let Ok(sc) = job::parse_sidecar(&text) {
            let img = ImageInfo { format: ImageFormat::Png, width: 640, height: 480 };
            let _ = JobSpec::build(&config::Defaults::default(), &sc, job::Input::Image(&img), &models::Catalog::Runway(models::Models::built_in()));
            let _ = JobSpec::build(&config::Defaults::default(), &sc, job::Input::Image(&img), &models::Catalog::Local);
        }
    }

    #[test]
    fn arbitrary_config_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = config::parse_str(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_job_state_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = serde_json::from_slice::<JobRecord>(&bytes);
    }

    #[test]
    fn valid_specs_round_trip(
        model_i in 0usize..100,
        prompt in "[a-zA-Z0-9 ,.'!?-]{0,60}",
        ratio_i in 0usize..100,
        duration_pick in 0u32..100,
        seed in proptest::option::of(0u64..=models::SEED_MAX),
        w in 16u32..5000,
        h in 16u32..5000,
    ) {
        let catalog = models::Models::built_in();
        let ids = catalog.models_for(models::Endpoint::ImageToVideo);
        let model = catalog.find(ids[model_i % ids.len()]).unwrap();
        let i2v = model.rules(models::Endpoint::ImageToVideo).unwrap();
        let ratio = i2v.ratios.as_ref().map(|r| r[ratio_i % r.len()].as_str());
        let duration = match i2v.durations.clone().unwrap() {
            models::Durations::Range(lo, hi) => lo + duration_pick % (hi - lo + 1),
            models::Durations::Values(v) => v[duration_pick as usize % v.len()],
            models::Durations::Any => 1 + duration_pick % 20,
        };
        let prompt = if i2v.prompt_required && prompt.trim().is_empty() { "a prompt".to_string() } else { prompt };
        let seed = seed.filter(|_| i2v.seed);
        // Written as a user would, read back by dropreel.
        let mut yaml = format!("model: {}\nprompt: {}\nduration: {duration}\n", model.id, serde_json::to_string(&prompt).unwrap());
        if let Some(r) = ratio {
            yaml.push_str(&format!("ratio: \"{r}\"\n"));
        }
        if let Some(s) = seed {
            yaml.push_str(&format!("seed: {s}\n"));
        }
        let sc: Sidecar = job::parse_sidecar(&yaml).unwrap();
        let img = ImageInfo { format: ImageFormat::Jpeg, width: w, height: h };
        let spec = JobSpec::build(&config::Defaults::default(), &sc, job::Input::Image(&img), &models::Catalog::Runway(catalog.clone())).unwrap();
        prop_assert_eq!(&spec.model, &model.id);
        prop_assert_eq!(&spec.prompt, prompt.trim());
        prop_assert_eq!(spec.ratio.as_deref(), ratio);
        prop_assert_eq!(spec.duration, duration);
        prop_assert_eq!(spec.seed, seed);
        // And the spec survives job.json.
        let back: JobSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        prop_assert_eq!(back, spec);
    }
}
