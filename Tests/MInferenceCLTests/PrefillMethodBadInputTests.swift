@testable import MInferenceCL
import Testing

/// Tri-shape, XAttention and FlexPrefill parameters outside their domain (docs/PREFILL-METHODS.md
/// sections 2, 4.1, 5.1): each is refused with an `AttentionError.budget` naming the head and the
/// parameter, before anything is allocated or launched; layer plans one launch cannot run are
/// refused with `AttentionError.unsupported`.
@Suite("Library: bad input of the prefill methods")
struct PrefillMethodBadInputTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var pattern: HeadPattern
        var error: AttentionError
        var testDescription: String { "\(pattern)" }
    }

    static func x(threshold: Double = 0.9, stride: Int = 8, blockSize: Int = 128, chunkSize: Int = 2048,
                  norm: Double = 1) -> HeadPattern {
        .xAttention(XAttentionParameters(threshold: threshold, stride: stride, blockSize: blockSize, chunkSize: chunkSize, norm: norm))
    }

    static func flex(gamma: Double = 0.9, tau: Double = 0.1, minBudget: Int? = nil, maxBudget: Int? = nil,
                     blockSize: Int = 128) -> HeadPattern {
        .flexPrefill(FlexPrefillParameters(gamma: gamma, tau: tau, minBudget: minBudget, maxBudget: maxBudget, blockSize: blockSize))
    }

    static let cases: [Case] = [
        // XAttention
        Case(pattern: x(threshold: 0), error: .budget("head 1: xattention threshold must be in (0, 1], got 0.0")),
        Case(pattern: x(threshold: -0.5), error: .budget("head 1: xattention threshold must be in (0, 1], got -0.5")),
        Case(pattern: x(threshold: 1.5), error: .budget("head 1: xattention threshold must be in (0, 1], got 1.5")),
        Case(pattern: x(threshold: .nan), error: .budget("head 1: xattention threshold must be in (0, 1], got nan")),
        Case(pattern: x(threshold: .infinity), error: .budget("head 1: xattention threshold must be in (0, 1], got inf")),
        Case(pattern: x(stride: 3), error: .budget("head 1: xattention stride must divide the block size 128, got 3")),
        Case(pattern: x(stride: 0), error: .budget("head 1: xattention stride must divide the block size 128, got 0")),
        Case(pattern: x(stride: 256), error: .budget("head 1: xattention stride must divide the block size 128, got 256")),
        Case(pattern: x(blockSize: 96), error: .budget("head 1: xattention block size must be a multiple of 64 from 64 to 512, got 96")),
        Case(pattern: x(blockSize: 1024), error: .budget("head 1: xattention block size must be a multiple of 64 from 64 to 512, got 1024")),
        Case(pattern: x(blockSize: 0), error: .budget("head 1: xattention block size must be a multiple of 64 from 64 to 512, got 0")),
        // a multiple of 64 that does not divide upstream's 2048-query chunk
        Case(pattern: x(blockSize: 192), error: .budget("head 1: xattention block size must divide upstream's 2048-query estimation chunk (64, 128, 256 or 512), got 192")),
        Case(pattern: x(chunkSize: 200),
             error: .budget("head 1: xattention chunk size must be a positive multiple of the block size 128, got 200")),
        Case(pattern: x(blockSize: 256, chunkSize: 128),
             error: .budget("head 1: xattention chunk size must be a positive multiple of the block size 256, got 128")),
        Case(pattern: x(norm: 0), error: .budget("head 1: xattention norm must be finite and > 0, got 0.0")),
        // FlexPrefill
        Case(pattern: flex(gamma: 0), error: .budget("head 1: flexprefill gamma must be in (0, 1], got 0.0")),
        Case(pattern: flex(gamma: .nan), error: .budget("head 1: flexprefill gamma must be in (0, 1], got nan")),
        Case(pattern: flex(gamma: 1.01), error: .budget("head 1: flexprefill gamma must be in (0, 1], got 1.01")),
        Case(pattern: flex(tau: -0.1), error: .budget("head 1: flexprefill tau must be in [0, 1], got -0.1")),
        Case(pattern: flex(tau: .nan), error: .budget("head 1: flexprefill tau must be in [0, 1], got nan")),
        Case(pattern: flex(minBudget: 0), error: .budget("head 1: flexprefill min budget must be from 1 to 2147483647 tokens, got 0")),
        Case(pattern: flex(maxBudget: 0), error: .budget("head 1: flexprefill max budget must be from 1 to 2147483647 tokens, got 0")),
        Case(pattern: flex(maxBudget: Int(Int32.max) + 1),
             error: .budget("head 1: flexprefill max budget must be from 1 to 2147483647 tokens, got 2147483648")),
        Case(pattern: flex(blockSize: 100), error: .budget("head 1: flexprefill block size must be a multiple of 64 from 64 to 512, got 100")),
        // Tri-shape
        Case(pattern: .triShape(sink: 0, window: 64, last: 10), error: .budget("head 1: tri-shape sink must be > 0, got 0")),
        Case(pattern: .triShape(sink: 4, window: 0, last: 10), error: .budget("head 1: tri-shape window must be > 0, got 0")),
        Case(pattern: .triShape(sink: 4, window: 64, last: -1), error: .budget("head 1: tri-shape last must be >= 0, got -1")),
        Case(pattern: .triShape(sink: 4, window: 64, last: 1 << 40), error: .budget("head 1: tri-shape budgets above 2147483647")),
    ]

    @Test(arguments: cases)
    func parameters(_ c: Case) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 9, keyLength: 9, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: 1)
        #expect(throws: c.error) {
            try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: LayerPlan(heads: [.dense, c.pattern]))
        }
        // The pattern's own check names the parameter without the head.
        guard case .budget(let message) = c.error else { return }
        #expect(throws: AttentionError.budget(String(message.dropFirst("head 1: ".count)))) { try c.pattern.validate() }
    }

    @Test("A layer's XAttention (FlexPrefill, Tri-shape) heads must share one parameter set (one last)")
    func oneParameterSetPerLayer() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 3, headsKV: 1, queryLength: 9, keyLength: 9, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: 2)
        let mixed: [(LayerPlan, String)] = [
            (LayerPlan(heads: [Self.x(threshold: 0.9), .dense, Self.x(threshold: 0.8)]),
             "the xattention heads of a layer must share one parameter set; got 2 different ones"),
            (LayerPlan(heads: [Self.x(stride: 8), Self.x(stride: 16), Self.x(stride: 4)]),
             "the xattention heads of a layer must share one parameter set; got 3 different ones"),
            (LayerPlan(heads: [Self.flex(gamma: 0.9), Self.flex(gamma: 0.9, maxBudget: 1000), .dense]),
             "the flexprefill heads of a layer must share one parameter set; got 2 different ones"),
            (LayerPlan(heads: [.triShape(sink: 4, window: 64, last: 10), .triShape(sink: 4, window: 64, last: 11), .dense]),
             "the tri-shape heads of a layer must share one last; got 2 different ones"),
        ]
        for (plan, message) in mixed {
            #expect(throws: AttentionError.unsupported(message)) {
                try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan)
            }
        }
        // What one launch can run: one XAttention set beside other kinds, Tri-shape heads with
        // their own sink and window but one last.
        for plan in [LayerPlan(heads: [Self.x(threshold: 0.7), Self.flex(), Self.x(threshold: 0.7)]),
                     LayerPlan(heads: [.triShape(sink: 4, window: 64, last: 10), .triShape(sink: 8, window: 16, last: 10), .dense])] {
            try plan.validate(for: problem)
        }
    }
}
