//! The embedded mock reached by function calls instead of sockets: what a simulation runs
//! against, so that no socket and no wall-clock wait stands between the virtual clock and
//! the identity provider's and backend's own code.

use std::sync::Arc;

use bytes::Bytes;
use client::transport::{BoxFuture, FormBody, Transport, TransportError};
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use mock::Mock;

/// Token requests answered by [`Mock::handle`], as the loopback server would answer them.
pub(crate) struct InProcessIdp(pub(crate) Arc<Mock>);

impl Transport for InProcessIdp {
    fn post_form<'a>(
        &'a self,
        url: &'a Uri,
        form: FormBody,
        max_body: usize,
    ) -> BoxFuture<'a, Result<Response<Bytes>, TransportError>> {
        Box::pin(async move {
            let request = Request::post(url.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Bytes::copy_from_slice(form.as_str().as_bytes()))
                .map_err(|e| TransportError::request(&e))?;
            drop(form);
            let response = self
                .0
                .handle(request)
                .await
                .map_err(|e| TransportError::request(&e))?;
            if response.body().len() > max_body {
                return Err(TransportError::BodyTooLarge {
                    status: response.status().as_u16(),
                    limit: max_body,
                });
            }
            Ok(response)
        })
    }
}

/// `GET /api/…` on the embedded backend, in-process: its latency, then its checks.
pub(crate) async fn backend_get(mock: &Mock, authorization: &HeaderValue) -> StatusCode {
    mock.backend.handle(Some(authorization)).await.status()
}
