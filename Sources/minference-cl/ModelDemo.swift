import FoundationEssentials
import MInferenceCL
import MInferenceCLModel

/// `minference-cl demo`: MInference's end-to-end claim on the default device. A real model
/// (SmolLM2-135M-Instruct) prefills a long real text (the licence texts, `LicenceTexts`) with a
/// passkey hidden in it, densely and with a searched sparse config, each with its own KV cache
/// (`PrefillComparison`):
///
/// 1. agreement: the prompt in chunks with every position's logits; top-1 agreement of the
///    next-token predictions and mean KL(dense ‖ config) over all prompt positions;
/// 2. time to first token: the prompt again, in one call with only the last position's logits
///    (as an engine serves it), split into attention (device time of the attention calls) and the
///    rest (products, norms, RoPE, host);
/// 3. the passkey: both answer greedily from their caches; found or not.
///
/// The agreement pass runs first, so program builds stay out of the timed pass.
struct ModelDemo {
    /// The sparse config the demo runs unless `--config` names another: searched at density 0.3
    /// at the model's trained 8K tokens, on licence texts the demo's text leaves out (Configs/README.md).
    static let defaultConfig = "Configs/smollm2-135m-density0.3-8k.json"
    /// Where the passkey is hidden, as a share of the text before it.
    static let passkeyDepth = 0.5

    /// The default prompt length in cache positions (prompt and passkey answer): on a GPU the
    /// model's trained context (`trainedLength`, 8192 for SmolLM2); on a CPU (PoCL) 1024, which
    /// runs both passes of both sides in about a minute and a half on 2 cores.
    static func defaultLength(kind: DeviceInfo.Kind, trainedLength: Int) -> Int {
        kind == .gpu ? (trainedLength > 0 ? trainedLength : 8192) : 1024
    }

    let context: ComputeContext
    let model: ReferenceModel
    let tokenizer: Tokenizer
    let plans: [LayerPlan]
    let options: SparseOptions
    let attentionDType: DType
    let products: ProductPath
    /// Cache positions for the prompt and the passkey answer.
    let length: Int
    let chunk: Int
    let seed: UInt64

    /// What one run measured.
    struct Outcome {
        var agreement: LogitsComparison
        var firstToken: PrefillComparison.FirstToken
        var passkey: Passkey
        var answers: (dense: [Int32], sparse: [Int32])
    }

    /// The passkey (drawn from `seed`) and the prompt that hides it in `haystack` (the text's
    /// tokens, repeated if short): `length − Passkey.answerTokens` tokens when `length` leaves room
    /// for any text, else intro, needle and question alone.
    func prompt(haystack: [Int32]) -> (passkey: Passkey, tokens: [Int32]) {
        var random = SeededRandom(seed: seed)
        let passkey = Passkey(random: &random)
        return (passkey, passkey.prompt(haystack: haystack, length: length, depth: Self.passkeyDepth, tokenizer: tokenizer))
    }

    /// Runs the three steps on `prompt` (from `prompt(haystack:)`); `progress` gets one line per step.
    func run(prompt: [Int32], passkey: Passkey, progress: (String) -> Void) throws -> Outcome {
        let comparison = try PrefillComparison(model: model, engine: AttentionEngine(context: context),
                                               capacity: prompt.count + Passkey.answerTokens,
                                               attentionDType: attentionDType, products: products, plans: plans, options: options)
        let agreement = try comparison.compare(tokens: prompt, chunk: chunk) { done in
            progress("agreement pass: tokens \(done)..<\(min(prompt.count, done + chunk)) of \(prompt.count), dense and config")
        }
        progress("warm-up")
        _ = try comparison.firstToken(tokens: Array(prompt.prefix(64)), warmups: 0)
        progress("time to first token: \(prompt.count) tokens, dense then config")
        let first = try comparison.firstToken(tokens: prompt, warmups: 0)
        progress("passkey: greedy answers")
        let answers = try comparison.answers(after: first)
        return Outcome(agreement: agreement, firstToken: first, passkey: passkey, answers: answers)
    }

    /// How many heads of all layers run each pattern kind, e.g. `270 heads: 150 vertical-slash, 120 a-shape`.
    static func patternCounts(_ plans: [LayerPlan]) -> String {
        let heads = plans.flatMap(\.heads)
        let counts = HeadPattern.Kind.allCases.map { kind in (kind, heads.filter { $0.kind == kind }.count) }.filter { $0.1 > 0 }
        return "\(heads.count) heads: " + counts.map { "\($0.1) \($0.0.rawValue)" }.joined(separator: ", ")
    }

    /// The report: a table of both sides, then the agreement line.
    func report(_ outcome: Outcome) throws -> String {
        let first = outcome.firstToken
        func ms(_ value: Double?) -> String { value.map { Format.fixed($0, 0) } ?? "n/a" }
        func answer(_ tokens: [Int32]) throws -> String {
            let found = try outcome.passkey.isFound(in: tokens, tokenizer: tokenizer)
            let text = try tokenizer.decode(tokens).split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n")
            return (found ? "found" : "not found") + " (\"\(text)\")"
        }
        let table = Table(header: ["", "dense", "config", "dense / config"], rows: [
            ["time to first token ms", ms(first.dense.milliseconds), ms(first.sparse.milliseconds),
             Format.fixed(first.dense.milliseconds / max(first.sparse.milliseconds, 1e-6), 2) + "x"],
            ["its attention ms (device time)", ms(first.dense.attentionMilliseconds), ms(first.sparse.attentionMilliseconds),
             first.dense.attentionMilliseconds.flatMap { d in first.sparse.attentionMilliseconds.map { Format.fixed(d / max($0, 1e-6), 2) + "x" } } ?? "n/a"],
            ["its rest ms (products, norms, host)", ms(first.dense.otherMilliseconds), ms(first.sparse.otherMilliseconds), ""],
            ["passkey \(outcome.passkey.key)", try answer(outcome.answers.dense), try answer(outcome.answers.sparse), ""],
        ])
        let logits = outcome.agreement
        return table.render() + "\n" + "next-token predictions over the \(logits.positions) prompt positions: top-1 agreement "
            + Format.fixed(100 * logits.top1Agreement, 1) + "%, mean KL(dense || config) " + Format.scientific(logits.meanKL)
            + " nats; perplexity of the text " + Format.fixed(logits.perplexity.reference, 2) + " dense, "
            + Format.fixed(logits.perplexity.candidate, 2) + " config"
    }
}
