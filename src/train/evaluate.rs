//! Scoring a model on a whole split, in eval mode.
use candle_core::{DType, Device, D};

use super::prepare::LabeledSet;
use crate::data::collate;
use crate::method::Method;
use crate::metrics::{Confusion, Scores};
use crate::model::{Classifier, Ctx};

/// Scores over every example of `set`, and the predicted label of each.
pub fn evaluate(
    model: &Classifier,
    method: &dyn Method,
    set: &LabeledSet,
    batch_size: usize,
    pad_id: u32,
    device: &Device,
) -> anyhow::Result<(Scores, Vec<u32>)> {
    let mut confusion = Confusion::new(model.num_labels);
    let mut predicted = Vec::with_capacity(set.len());
    let mut loss_sum = 0f64;
    // Eval mode draws no random numbers; the generator only satisfies the context.
    let mut rng = crate::rng::stream(0, 0);
    for start in (0..set.len()).step_by(batch_size.max(1)) {
        let end = (start + batch_size).min(set.len());
        let rows: Vec<_> = (start..end).map(|i| (&set.encoded[i], set.labels[i])).collect();
        let batch = collate(&rows, pad_id, None, device)?;
        let logits = method.eval_logits(model, &batch.inputs, &mut Ctx::eval(&mut rng))?.to_dtype(DType::F32)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &batch.labels)?.to_scalar::<f32>()?;
        loss_sum += loss as f64 * (end - start) as f64;
        let batch_predictions = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        for (offset, &p) in batch_predictions.iter().enumerate() {
            confusion.add(set.labels[start + offset] as usize, p as usize);
        }
        predicted.extend(batch_predictions);
    }
    let loss = if set.is_empty() { 0.0 } else { loss_sum / set.len() as f64 };
    Ok((confusion.scores(loss), predicted))
}
