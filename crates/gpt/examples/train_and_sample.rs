//! Train microgpt on a handful of names and sample new ones, with the `gpt` library alone: a
//! tokenizer from the documents, weights from a seed, Adam steps on batches, then the KV-cache
//! sampler. `microgpt train` does the same with data files, validation and checkpoints around it.
//!
//! Run with `cargo run --release -p gpt --example train_and_sample`.

use gpt::{
    Adam, AdamSettings, Config, Model, Params, Request, Sampler, SamplingOptions, Tokenizer,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// The training documents: one name each.
const NAMES: &str = "emma olivia ava isabella sophia charlotte mia amelia harper evelyn abigail \
                     emily ella elizabeth camila luna sofia avery mila aria scarlett penelope \
                     layla chloe";

const STEPS: usize = 300;
const BATCH: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let names: Vec<&str> = NAMES.split_whitespace().collect();
    let tokenizer = Tokenizer::from_documents(names.iter().copied());
    let documents = names
        .iter()
        .map(|name| tokenizer.encode(name))
        .collect::<Result<Vec<_>, _>>()?;
    let config = Config {
        vocab_size: tokenizer.vocab_size(),
        ..Config::default()
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    let params = Params::<f64>::init(config, &mut rng)?;
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);

    for step in 0..STEPS {
        let batch: Vec<&[usize]> = (0..BATCH)
            .map(|i| documents[(step * BATCH + i) % documents.len()].as_slice())
            .collect();
        // The step holds the batch's gradient; applying it is Adam's update at microgpt's
        // linearly decaying learning rate.
        let loss = model.batch_loss(&batch)?.apply(&mut adam, STEPS);
        if step % 50 == 0 || step + 1 == STEPS {
            println!("step {:>3}: loss {loss:.4}", step + 1);
        }
    }

    let params = model.params();
    let mut sampler = Sampler::new(*params.config(), 8);
    // Ten names at microgpt.py's temperature of 0.5, each token drawn from the most probable ones
    // that hold 95% of the probability (top-p); `Request::new` alone samples as microgpt.py does.
    let request = Request {
        options: SamplingOptions::new(0.5, None, Some(0.95))?,
        ..Request::new(&tokenizer, 10)
    };
    for name in sampler.generate(&params, &request, &mut rng)? {
        println!("{name}");
    }
    Ok(())
}
