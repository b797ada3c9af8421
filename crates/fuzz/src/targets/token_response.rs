//! The token client's reading of a token endpoint answer (status, headers, JSON body, OAuth
//! error body, `Retry-After`), through [`client::TokenClient::get_token`] with a transport that
//! answers the input.
//!
//! Input, as text: the status code on the first line (200 when it is not one), header lines
//! `Name: value` up to an empty line, then the body.
//!
//! Promise checked: a token the client accepts keeps its secret out of `Debug`.

use std::sync::Arc;

use bytes::Bytes;
use client::{
    transport::{BoxFuture, FormBody, Transport, TransportError},
    CachePolicy, ClientAuth, ClientSecret, RetryPolicy, TokenClient, TokenClientConfig,
};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Uri};

use crate::{runtime::block_on, targets::no_extra_seeds, Outcome, Target};

pub(crate) const TARGET: Target = Target {
    name: "token_response",
    about: "the token client's reading of token endpoint answers",
    run,
    seeds: no_extra_seeds,
};

/// Access tokens shorter than this may appear in `Debug` by coincidence ("Bearer").
const DISTINCTIVE_TOKEN_LEN: usize = 8;

fn run(data: &[u8]) -> Outcome {
    let answer = Answer::parse(data);
    let mut config = TokenClientConfig::new(
        "http://127.0.0.1:9/tokenbench/oauth2/v2.0/token",
        "11111111-2222-3333-4444-555555555555",
        "api://tokenbench-backend/.default",
    );
    config.policy = CachePolicy::Apim;
    config.retry = Some(RetryPolicy::none());
    let client = TokenClient::builder(config, ClientAuth::Secret(ClientSecret::new("s3cret")))
        .transport(Arc::new(answer))
        .build()
        .expect("the fuzz client's configuration is valid");
    let result = block_on(client.get_token());
    if let Ok(token) = &result {
        let secret = token.access_token();
        if secret.len() >= DISTINCTIVE_TOKEN_LEN {
            assert!(
                !format!("{token:?}").contains(secret),
                "a token's Debug shows the access token"
            );
        }
    }
    Outcome::of(&result)
}

/// The answer the transport gives, every time.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn parse(data: &[u8]) -> Answer {
        let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&data[..at], &data[at + 2..]),
            None => (data, &[][..]),
        };
        let mut lines = head.split(|&b| b == b'\n');
        let status = lines
            .next()
            .and_then(|line| StatusCode::from_bytes(line.trim_ascii()).ok())
            .unwrap_or(StatusCode::OK);
        let mut headers = HeaderMap::new();
        for line in lines {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(line[..colon].trim_ascii()),
                HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
            ) {
                headers.append(name, value);
            }
        }
        Answer {
            status,
            headers,
            body: Bytes::copy_from_slice(body),
        }
    }
}

impl Transport for Answer {
    fn post_form<'a>(
        &'a self,
        _url: &'a Uri,
        _form: FormBody,
        _max_body: usize,
    ) -> BoxFuture<'a, Result<Response<Bytes>, TransportError>> {
        let mut response = Response::new(self.body.clone());
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        Box::pin(async move { Ok(response) })
    }
}
