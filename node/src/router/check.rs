//! The answer-check layer, between forward and attempts: an answer that fails a check is an
//! [`AttemptError::Unverified`] (retryable), so the attempt machinery sends the request to the
//! next target exactly as it does after a transport error.
//!
//! The shape of every answer (one well-formed JSON-RPC response with the right id) is already
//! checked when the reply is read ([`super::classify`]); checks here are about its content.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::forward::{Call, Forward, Target};
use super::outcome::{Answer, AttemptError};
use crate::jsonrpc::Request;

/// What a check decided before the attempt: the request to send, and what the check must
/// remember until the answer arrives.
#[derive(Debug)]
pub struct Prepared<T> {
    /// A rewritten request to send instead of `call.req` (a `latest` state read pinned to the
    /// trusted head's number), if the check needs one it can verify.
    pub request: Option<Request>,
    /// Decisions carried to [`AnswerCheck::check`] (e.g. whether this attempt is sampled).
    pub ticket: T,
}

/// Checks the content of an answer before it is passed on.
pub trait AnswerCheck: Send + Sync {
    /// Carried from [`AnswerCheck::prepare`] to [`AnswerCheck::check`] of the same attempt.
    type Ticket: Send + Default;

    /// Decides, before the attempt, what to send to `target` and how to check its answer. By
    /// default: the request as it is, a default ticket (checks that only look at answers).
    fn prepare<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        deadline: Instant,
    ) -> impl Future<Output = Result<Prepared<Self::Ticket>, AttemptError>> + Send + 'a {
        let _ = (call, target, deadline);
        std::future::ready(Ok(Prepared { request: None, ticket: Self::Ticket::default() }))
    }

    /// `answer` (possibly marked more verified), or why it must not be used. Material the check
    /// fetches must arrive before `deadline`.
    fn check<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        answer: Answer,
        ticket: Self::Ticket,
        deadline: Instant,
    ) -> impl Future<Output = Result<Answer, AttemptError>> + Send + 'a;
}

/// Accepts every answer as it is (integrity off).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCheck;

impl AnswerCheck for NoCheck {
    type Ticket = ();

    fn check<'a>(
        &'a self,
        _: &'a Call<'a>,
        _: Target,
        answer: Answer,
        _: (),
        _: Instant,
    ) -> impl Future<Output = Result<Answer, AttemptError>> + Send + 'a {
        std::future::ready(Ok(answer))
    }
}

/// A [`Forward`] whose answers pass `check` before they count.
#[derive(Debug, Clone)]
pub struct Checked<F, C> {
    /// The layer below.
    pub inner: F,
    /// The check.
    pub check: C,
}

impl<F: Forward, C: AnswerCheck> Forward for Checked<F, C> {
    async fn forward<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        budget: Duration,
    ) -> Result<Answer, AttemptError> {
        let deadline = Instant::now() + budget;
        let Prepared { request: pinned, ticket } = self.check.prepare(call, target, deadline).await?;
        let pinned_call;
        let call = match &pinned {
            Some(req) => {
                pinned_call = Call { req, ..*call };
                &pinned_call
            }
            None => call,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = self.inner.forward(call, target, left).await?;
        self.check.check(call, target, answer, ticket, deadline).await
    }
}
