//! What the fake API received: an image back from its data URI, a create body by its prompt.

use base64::Engine as _;
use serde_json::Value;

pub fn decode_data_uri(uri: &str) -> Vec<u8> {
    let (_, data) = uri.split_once(";base64,").expect("a data URI");
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap()
}

pub fn body_for<'a>(bodies: &'a [Value], prompt: &str) -> &'a Value {
    bodies
        .iter()
        .find(|b| b["promptText"] == prompt)
        .unwrap_or_else(|| panic!("no request with prompt {prompt:?} in {bodies:#?}"))
}
