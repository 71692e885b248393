//! Scoring a model on a whole split, in eval mode.
use candle_core::{DType, Device, D};

use super::prepare::LabeledSet;
use crate::data::collate;
use crate::method::Method;
use crate::metrics::{Confusion, Scores};
use crate::model::{Classifier, Ctx};

/// Scores over every example of `set`, and the predicted label of each (in the set's order).
///
/// Batches are formed from the examples sorted by length, so a batch pads its rows to about their own
/// length instead of to the longest of a random group: the same predictions for less work.
pub fn evaluate(
    model: &Classifier,
    method: &dyn Method,
    set: &LabeledSet,
    batch_size: usize,
    pad_id: u32,
    device: &Device,
) -> anyhow::Result<(Scores, Vec<u32>)> {
    let mut confusion = Confusion::new(model.num_labels);
    let mut predicted = vec![0u32; set.len()];
    let mut loss_sum = 0f64;
    // Inference draws no random numbers; the generator only satisfies the context.
    let mut rng = crate::rng::stream(0, 0);
    let mut by_length: Vec<usize> = (0..set.len()).collect();
    by_length.sort_by_key(|&i| set.encoded[i].ids.len());
    for chunk in by_length.chunks(batch_size.max(1)) {
        let rows: Vec<_> = chunk.iter().map(|&i| (&set.encoded[i], set.labels[i])).collect();
        let batch = collate(&rows, pad_id, None, device)?;
        let logits = method.eval_logits(model, &batch.inputs, &mut Ctx::inference(&mut rng))?.to_dtype(DType::F32)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &batch.labels)?.to_scalar::<f32>()?;
        loss_sum += loss as f64 * chunk.len() as f64;
        for (&i, p) in chunk.iter().zip(logits.argmax(D::Minus1)?.to_vec1::<u32>()?) {
            confusion.add(set.labels[i] as usize, p as usize);
            predicted[i] = p;
        }
    }
    let loss = if set.is_empty() { 0.0 } else { loss_sum / set.len() as f64 };
    Ok((confusion.scores(loss), predicted))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, D};

    use super::*;
    use crate::method::standard::Standard;
    use crate::model::tokenizer::TextTokenizer;
    use crate::model::ModelFiles;

    /// Length-sorted batches give every example the prediction it gets alone, in the set's order.
    #[test]
    fn predictions_come_back_in_the_set_order() -> anyhow::Result<()> {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let dir = fixtures.join("models/bert-cls");
        let model = Classifier::load(&ModelFiles::in_dir(&dir)?, 3, &Device::Cpu, DType::F32, 0)?;
        let tokenizer = TextTokenizer::from_dir(&dir, 32)?;
        let text = std::fs::read_to_string(fixtures.join("sentences.txt"))?;
        let rows: Vec<(&str, Option<&str>)> = text.lines().map(|l| (l, None)).collect();
        let encoded = tokenizer.encode_batch(&rows)?;
        let labels = (0..encoded.len() as u32).map(|i| i % 3).collect();
        let set = LabeledSet { name: "fixture".into(), encoded, labels };
        assert!(set.encoded.windows(2).any(|w| w[0].ids.len() > w[1].ids.len()), "the set is not sorted");

        let (scores, predicted) = evaluate(&model, &Standard, &set, 4, tokenizer.pad_id(), &Device::Cpu)?;
        let mut rng = crate::rng::stream(0, 0);
        let alone: Vec<u32> = (0..set.len())
            .map(|i| {
                let batch = collate(&[(&set.encoded[i], set.labels[i])], tokenizer.pad_id(), None, &Device::Cpu)?;
                let logits = model.logits(&batch.inputs, &mut Ctx::eval(&mut rng))?;
                Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?[0])
            })
            .collect::<anyhow::Result<_>>()?;
        assert_eq!(predicted, alone);
        // Scoring builds no graph: an inference pass tracks nothing, for plain models and SiFT's LN0.
        let batch = collate(&[(&set.encoded[0], set.labels[0])], tokenizer.pad_id(), None, &Device::Cpu)?;
        assert!(!model.logits(&batch.inputs, &mut Ctx::inference(&mut rng))?.track_op());
        assert!(model.logits(&batch.inputs, &mut Ctx::eval(&mut rng))?.track_op());
        let sift = crate::method::sift::Sift::new(Default::default());
        assert!(!sift.eval_logits(&model, &batch.inputs, &mut Ctx::inference(&mut rng))?.track_op());
        let correct = alone.iter().zip(&set.labels).filter(|(p, g)| p == g).count();
        assert_eq!(scores.accuracy, correct as f64 / set.len() as f64);
        Ok(())
    }
}
