//! The only thread and channel code of the app: a [`Job`] runs blocking core work (reading
//! data, downloading a model, training) on a named thread, forwards its messages through an
//! unbounded channel and wakes the UI on each; the UI drains the messages every frame and
//! never waits. A panic in the job becomes an error message instead of a frozen window.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use eframe::egui;

use crate::train::Cancel;

/// Sends a job's messages to the UI and asks it to repaint.
pub struct Reporter<M> {
    sender: Sender<M>,
    ctx: egui::Context,
}

impl<M> Reporter<M> {
    /// Never blocks; a closed window just drops the message.
    pub fn send(&self, message: M) {
        let _ = self.sender.send(message);
        self.ctx.request_repaint_after(Duration::from_millis(30));
    }
}

impl<M> Clone for Reporter<M> {
    fn clone(&self) -> Self {
        Reporter {
            sender: self.sender.clone(),
            ctx: self.ctx.clone(),
        }
    }
}

/// Background work producing messages `M` and, at the end, a result `T`.
pub struct Job<M, T> {
    receiver: Receiver<M>,
    handle: Option<JoinHandle<T>>,
    cancel: Cancel,
}

impl<M: Send + 'static, T: Send + 'static> Job<M, T> {
    /// Starts `work` on a thread called `name`.
    pub fn spawn(
        name: &str,
        ctx: &egui::Context,
        work: impl FnOnce(Reporter<M>, Cancel) -> T + Send + 'static,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = channel();
        let cancel = Cancel::new();
        let reporter = Reporter {
            sender,
            ctx: ctx.clone(),
        };
        let job_cancel = cancel.clone();
        let repaint = ctx.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let result = work(reporter, job_cancel);
                repaint.request_repaint();
                result
            })?;
        Ok(Job {
            receiver,
            handle: Some(handle),
            cancel,
        })
    }
}

impl<M, T> Job<M, T> {
    /// Messages sent since the last call.
    pub fn drain(&self) -> Vec<M> {
        self.receiver.try_iter().collect()
    }

    /// Asks the job to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// The result once the thread has ended (once); a panic becomes `Err(message)`.
    pub fn take_result(&mut self) -> Option<Result<T, String>> {
        if !self.handle.as_ref()?.is_finished() {
            return None;
        }
        let handle = self.handle.take()?;
        Some(handle.join().map_err(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown cause".to_string());
            format!("the background work stopped unexpectedly: {text}")
        }))
    }
}

/// One frame's polling of a run that reports events and ends in `Result<T, String>`: its new
/// events go to `apply`; once it has ended the slot is emptied and its outcome (a panic folded
/// into `Err`) returned.
pub fn poll_run<M, T>(
    slot: &mut Option<Job<M, Result<T, String>>>,
    mut apply: impl FnMut(&M),
) -> Option<Result<T, String>> {
    let job = slot.as_mut()?;
    for message in job.drain() {
        apply(&message);
    }
    let outcome = job.take_result()?;
    *slot = None;
    Some(outcome.and_then(|result| result))
}
