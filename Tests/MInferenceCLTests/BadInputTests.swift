import Foundation
@testable import MInferenceCL
import Testing

/// The library API on bad input: every request it cannot serve is refused with a typed error
/// that names the problem, before anything is allocated or launched.
@Suite("Library: bad input")
struct BadInputTests {
    // MARK: Shapes, lengths, head dims, dtypes, scale

    struct ShapeCase: CustomTestStringConvertible, Sendable {
        var name: String
        var q: [Int], k: [Int], v: [Int]
        var dtype: DType = .f16
        var scale: Float? = nil
        var error: AttentionError
        var testDescription: String { name }
    }

    static let shapeCases: [ShapeCase] = [
        ShapeCase(name: "q vs k head dim", q: [4, 37, 64], k: [1, 37, 32], v: [1, 37, 32],
                  error: .shape("head dim of q (64) differs from head dim of k/v (32)")),
        ShapeCase(name: "k vs v length", q: [4, 37, 64], k: [1, 37, 64], v: [1, 36, 64],
                  error: .shape("k [1, 37, 64] and v [1, 36, 64] must have the same shape")),
        ShapeCase(name: "Hq % Hkv != 0", q: [3, 37, 64], k: [2, 37, 64], v: [2, 37, 64],
                  error: .shape("query heads (3) must be a multiple of KV heads (2) for grouped-query attention")),
        ShapeCase(name: "rank 2", q: [37, 64], k: [37, 64], v: [37, 64],
                  error: .shape("q has rank 2 (shape [37, 64]); expected [H, N, d] or [B, H, N, d]")),
        ShapeCase(name: "rank 5", q: [1, 1, 1, 37, 64], k: [1, 37, 64], v: [1, 37, 64],
                  error: .shape("q has rank 5 (shape [1, 1, 1, 37, 64]); expected [H, N, d] or [B, H, N, d]")),
        ShapeCase(name: "ranks differ", q: [1, 4, 37, 64], k: [1, 37, 64], v: [1, 37, 64],
                  error: .shape("q, k and v must have the same rank; got q [1, 4, 37, 64], k [1, 37, 64], v [1, 37, 64]")),
        ShapeCase(name: "batch differs", q: [2, 4, 37, 64], k: [1, 1, 37, 64], v: [1, 1, 37, 64],
                  error: .shape("batch of q (2) differs from batch of k/v (1)")),
        ShapeCase(name: "N = 0 queries", q: [4, 0, 64], k: [1, 37, 64], v: [1, 37, 64],
                  error: .shape("query length is 0: N must be at least 1")),
        ShapeCase(name: "N = 0 keys", q: [4, 37, 64], k: [1, 0, 64], v: [1, 0, 64],
                  error: .shape("key length is 0: N must be at least 1")),
        ShapeCase(name: "zero heads", q: [0, 37, 64], k: [1, 37, 64], v: [1, 37, 64],
                  error: .shape("head counts must be at least 1 (q 0, kv 1)")),
        ShapeCase(name: "head dim 12", q: [4, 37, 12], k: [1, 37, 12], v: [1, 37, 12],
                  error: .unsupported("head dim 12: supported head dims are multiples of 8 from 8 to 256")),
        ShapeCase(name: "head dim 264", q: [4, 37, 264], k: [1, 37, 264], v: [1, 37, 264],
                  error: .unsupported("head dim 264: supported head dims are multiples of 8 from 8 to 256")),
        ShapeCase(name: "head dim 0", q: [4, 37, 0], k: [1, 37, 0], v: [1, 37, 0],
                  error: .unsupported("head dim 0: supported head dims are multiples of 8 from 8 to 256")),
        ShapeCase(name: "zero scale", q: [4, 37, 64], k: [1, 37, 64], v: [1, 37, 64], scale: 0,
                  error: .invalidArgument("scale must be a positive finite number, got 0.0")),
        ShapeCase(name: "NaN scale", q: [4, 37, 64], k: [1, 37, 64], v: [1, 37, 64], scale: .nan,
                  error: .invalidArgument("scale must be a positive finite number, got nan")),
        ShapeCase(name: "sequence too long", q: [1, 3_000_000_000, 64], k: [1, 3_000_000_000, 64], v: [1, 3_000_000_000, 64],
                  error: .unsupported("sequence lengths above 2147483647 tokens")),
        ShapeCase(name: "tensor too large to address", q: [1 << 40, 1 << 20, 1 << 20, 64], k: [1 << 40, 1, 1 << 20, 64], v: [1 << 40, 1, 1 << 20, 64],
                  error: .unsupported("q of shape [1099511627776, 1048576, 1048576, 64] is too large to address")),
    ]

    @Test(arguments: shapeCases)
    func problemShapes(_ c: ShapeCase) {
        #expect(throws: c.error) { try AttentionProblem(q: c.q, k: c.k, v: c.v, dtype: c.dtype, scale: c.scale) }
    }

    @Test("q, k and v of different dtypes")
    func mixedDTypes() throws {
        let engine = try TestDevice.engine()
        let q = try Tensor(shape: [2, 5, 64], dtype: .f32, values: Array(repeating: 0.5, count: 640))
        let k = try Tensor(shape: [1, 5, 64], dtype: .f16, values: Array(repeating: 0.5, count: 320))
        #expect(throws: AttentionError.dtype("q, k and v must share one dtype; got q f32, k f16, v f16")) {
            try engine.dense(q: q, k: k, v: k)
        }
    }

    @Test("Device tensors that do not match the problem")
    func deviceTensorsMismatch() throws {
        let engine = try TestDevice.engine()
        let context = engine.context
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 9, keyLength: 9, headDim: 64, inputDType: .f32)
        let q = try DeviceTensor(context: context, shape: problem.queryShape, dtype: .f32)
        let k = try DeviceTensor(context: context, shape: problem.keyShape, dtype: .f32)
        let short = try DeviceTensor(context: context, shape: [1, 2, 8, 64], dtype: .f32)
        let half = try DeviceTensor(context: context, shape: problem.queryShape, dtype: .f16)
        #expect(throws: AttentionError.shape("output has shape [1, 2, 8, 64]; the problem needs [1, 2, 9, 64] or [2, 9, 64] ([B, H, N, d])")) {
            try engine.dense(problem: problem, q: q, k: k, v: k, output: short)
        }
        // The same element count in another order is refused too: [N, H, d] is not [H, N, d].
        let transposed = try DeviceTensor(context: context, shape: [9, 2, 64], dtype: .f32)
        #expect(throws: AttentionError.shape("q has shape [9, 2, 64]; the problem needs [1, 2, 9, 64] or [2, 9, 64] ([B, H, N, d])")) {
            try engine.dense(problem: problem, q: transposed, k: k, v: k, output: q)
        }
        let threeD = try DeviceTensor(context: context, shape: [2, 9, 64], dtype: .f32)
        _ = try engine.dense(problem: problem, q: threeD, k: k, v: k, output: q)
        #expect(throws: AttentionError.dtype("output is f16; the problem needs f32")) {
            try engine.dense(problem: problem, q: q, k: k, v: k, output: half)
        }
        #expect(throws: AttentionError.shape("the layer plan has 3 head patterns; q has 2 query heads")) {
            try engine.run(problem: problem, q: q, k: k, v: k, output: q, plan: .uniform(.dense, heads: 3))
        }
    }

    // MARK: Budgets

    struct BudgetCase: CustomTestStringConvertible, Sendable {
        var pattern: HeadPattern
        var error: AttentionError
        var testDescription: String { "\(pattern)" }
    }

    static let budgetCases: [BudgetCase] = [
        BudgetCase(pattern: .aShape(sink: 0, window: 64), error: .budget("head 1: a-shape sink must be > 0, got 0")),
        BudgetCase(pattern: .aShape(sink: 4, window: -64), error: .budget("head 1: a-shape window must be > 0, got -64")),
        BudgetCase(pattern: .aShape(sink: 4, window: 1 << 40), error: .budget("head 1: a-shape budgets above 2147483647")),
        BudgetCase(pattern: .verticalSlash(vertical: -1, slash: 100), error: .budget("head 1: vertical-slash vertical budget must be > 0, got -1")),
        BudgetCase(pattern: .verticalSlash(vertical: 100, slash: 0), error: .budget("head 1: vertical-slash slash budget must be > 0, got 0")),
        BudgetCase(pattern: .verticalSlash(vertical: Int.max, slash: 100), error: .budget("head 1: vertical-slash budgets above 2147483647")),
        BudgetCase(pattern: .blockSparse(blocks: 0), error: .budget("head 1: block-sparse blocks must be > 0, got 0")),
        BudgetCase(pattern: .blockSparse(blocks: Int(Int32.max) + 1), error: .budget("head 1: block-sparse budget above 2147483647")),
    ]

    @Test(arguments: budgetCases)
    func budgets(_ c: BudgetCase) throws {
        let engine = try TestDevice.engine()
        let inputs = try RandomInputs(problem: try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 9, keyLength: 9, headDim: 64, inputDType: .f32), seed: 1)
        #expect(throws: c.error) {
            try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: LayerPlan(heads: [.dense, c.pattern]))
        }
    }

    @Test("Sparse patterns need causal prefill or a chunk of one")
    func sparseNeedsCausalPrefill() throws {
        let chunk = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 9, keyLength: 20, headDim: 64, inputDType: .f32)
        try LayerPlan.uniform(.aShape(sink: 4, window: 8), heads: 2).validate(for: chunk)
        let overhang = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 21, keyLength: 20, headDim: 64, inputDType: .f32)
        #expect(throws: AttentionError.unsupported("head 0: a-shape needs Nq <= Nk (a prefill or a chunk of one, queries at the end); got Nq 21, Nk 20")) {
            try LayerPlan.uniform(.aShape(sink: 4, window: 8), heads: 2).validate(for: overhang)
        }
        let full = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 9, keyLength: 9, headDim: 64, inputDType: .f32, causal: false)
        #expect(throws: AttentionError.unsupported("head 1: vertical-slash is defined for causal attention only")) {
            try LayerPlan(heads: [.dense, .verticalSlash(vertical: 30, slash: 50)]).validate(for: full)
        }
    }

    // MARK: .npy files

    struct NPYCase: CustomTestStringConvertible, Sendable {
        var name: String
        var bytes: [UInt8]
        var bf16 = false
        var error: TensorFileError
        var testDescription: String { name }
    }

    static let valid = CommandLineTests.npy(shape: [2, 3, 8])

    static let npyCases: [NPYCase] = [
        NPYCase(name: "empty file", bytes: [], error: .badHeader(path: "t.npy", reason: "not a .npy file (missing the \\x93NUMPY magic)")),
        NPYCase(name: "magic only", bytes: Array(valid.prefix(6)), error: .badHeader(path: "t.npy", reason: "not a .npy file (missing the \\x93NUMPY magic)")),
        NPYCase(name: "cut in the header", bytes: Array(valid.prefix(40)), error: .truncated(path: "t.npy", expected: 128, actual: 40)),
        NPYCase(name: "cut in the data", bytes: Array(valid.prefix(130)), error: .truncated(path: "t.npy", expected: 128 + 192, actual: 130)),
        NPYCase(name: "one byte short", bytes: Array(valid.dropLast()), error: .truncated(path: "t.npy", expected: 320, actual: 319)),
        NPYCase(name: "version 9", bytes: [0x93] + Array("NUMPY".utf8) + [9, 0] + Array(valid.dropFirst(8)),
                error: .badHeader(path: "t.npy", reason: "unsupported .npy format version 9.0")),
        NPYCase(name: "version 2 cut before its length", bytes: [0x93] + Array("NUMPY".utf8) + [2, 0, 1, 0, 0],
                error: .truncated(path: "t.npy", expected: 12, actual: 11)),
        NPYCase(name: "no descr", bytes: CommandLineTests.npy(header: "{'fortran_order': False, 'shape': (2,), }", data: []),
                error: .badHeader(path: "t.npy", reason: "header has no 'descr' field: {'fortran_order': False, 'shape': (2,), }")),
        NPYCase(name: "structured dtype", bytes: CommandLineTests.npy(header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", data: []),
                error: .badHeader(path: "t.npy", reason: "'descr' is not a string (structured dtypes are not supported)")),
        NPYCase(name: "shape not a tuple", bytes: CommandLineTests.npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': 2, }", data: []),
                error: .badHeader(path: "t.npy", reason: "'shape' is not a tuple")),
        NPYCase(name: "negative dimension", bytes: CommandLineTests.npy(header: CommandLineTests.shapeHeader("<f4", [2, -3]), data: []),
                error: .badHeader(path: "t.npy", reason: "shape entry '-3' is not a non-negative integer")),
        NPYCase(name: "overflowing shape hidden by a zero (found by fuzzing)",
                bytes: CommandLineTests.npy(header: CommandLineTests.shapeHeader("<f2", [1 << 40, 1 << 40, 0]), data: []),
                error: .badHeader(path: "t.npy", reason: "shape [1099511627776, 1099511627776, 0] is too large")),
        NPYCase(name: "Fortran order", bytes: CommandLineTests.npy(shape: [2, 3, 8], fortran: true), error: .fortranOrder(path: "t.npy")),
        NPYCase(name: "big-endian", bytes: CommandLineTests.npy(descr: ">f4", shape: [2], elementBytes: 4),
                error: .unsupportedDType(path: "t.npy", descr: ">f4", hint: "big-endian data; save it little-endian ('<')")),
        NPYCase(name: "float64", bytes: CommandLineTests.npy(descr: "<f8", shape: [2], elementBytes: 8),
                error: .unsupportedDType(path: "t.npy", descr: "<f8", hint: "supported: <f2 (float16), <f4 (float32), bf16 as raw 16-bit words")),
        NPYCase(name: "int32", bytes: CommandLineTests.npy(descr: "<i4", shape: [2], elementBytes: 4), bf16: true,
                error: .unsupportedDType(path: "t.npy", descr: "<i4", hint: "supported: <f2 (float16), <f4 (float32), bf16 as raw 16-bit words")),
        NPYCase(name: "16-bit words outside bf16 mode", bytes: CommandLineTests.npy(descr: "<u2", shape: [2], elementBytes: 2),
                error: .unsupportedDType(path: "t.npy", descr: "<u2", hint: NPYFileBF16Tests.wordsHint)),
        NPYCase(name: "ml_dtypes' V2 outside bf16 mode", bytes: CommandLineTests.npy(descr: "V2", shape: [2], elementBytes: 2),
                error: .unsupportedDType(path: "t.npy", descr: "V2", hint: NPYFileBF16Tests.wordsHint)),
        NPYCase(name: "more data than the shape", bytes: valid + [0, 0, 0, 0],
                error: .shapeMismatch(path: "t.npy", shape: [2, 3, 8], dataBytes: 196, expectedBytes: 192)),
    ]

    @Test(arguments: npyCases)
    func npyFiles(_ c: NPYCase) {
        #expect(throws: c.error) { try NPYFile.decode(c.bytes, path: "t.npy", bf16: c.bf16) }
    }

    @Test("Missing, unreadable and unwritable .npy paths")
    func npyPaths() throws {
        let folder = try TemporaryFolder("npy-paths")
        defer { folder.remove() }
        #expect(throws: TensorFileError.missing(path: folder.file("none.npy"))) { try NPYFile.read(folder.file("none.npy")) }
        #expect(throws: TensorFileError.unreadable(path: folder.path)) { try NPYFile.read(folder.path) }
        let tensor = try Tensor(shape: [2], dtype: .f32, values: [1, 2])
        #expect(throws: TensorFileError.unwritable(path: folder.file("no/such/t.npy"), reason: "No such file or directory")) {
            try NPYFile.write(tensor, to: folder.file("no/such/t.npy"))
        }
        #expect(throws: TensorFileError.self) { try NPYFile.write(int32: [1, 2], shape: [2], to: folder.path) }
        #expect(folder.contents().isEmpty, "a failed write left \(folder.contents())")
    }

    // MARK: Configs (the reader's own suite covers each rule; these are the issue's cases)

    @Test("Configs: malformed, unknown pattern, head count, negative budget, head index limit")
    func configs() throws {
        func decode(_ text: String) throws -> PatternConfig { try PatternConfig.decode(Array(text.utf8), source: "c.json") }
        #expect(throws: PatternConfigError.malformedJSON(source: "c.json", line: 1, column: 4, reason: "unexpected end of file, expected a string key")) {
            try decode("[{ ")
        }
        #expect(throws: PatternConfigError.unknownPattern(source: "c.json", layer: 0, head: "0", name: "stripes")) {
            try decode("[{\"0\": [\"stripes\", 1, 1]}]")
        }
        #expect(throws: PatternConfigError.headCountMismatch(source: "c.json", layer: 0, configHeads: 1, modelHeads: 4)) {
            try decode("[{\"0\": [\"vertical_and_slash\", 1000, 6096]}]").patterns(layer: 0, heads: 4)
        }
        #expect(throws: PatternConfigError.badBudget(source: "c.json", layer: 0, head: "0", pattern: "stream_llm", field: "s",
                                                    value: "-3", reason: "not > 0")) {
            try decode("[{\"0\": [\"stream_llm\", 4, -3]}]")
        }
        // A head key far above any model's head count (the fuzzer's hang: every index below it
        // was enumerated as missing).
        #expect(throws: PatternConfigError.badHeadKey(source: "c.json", layer: 0, key: "338734338769")) {
            try decode("[{\"338734338769\": [\"vertical_and_slash\", 1000, 6096]}]")
        }
        #expect(throws: PatternConfigError.badHeadKey(source: "c.json", layer: 0, key: "65536")) {
            try decode("[{\"65536\": [\"vertical_and_slash\", 1000, 6096]}]")
        }
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            #expect(throws: PatternConfigError.self) { try decode("[{\"65535\": [\"vertical_and_slash\", 1000, 6096]}]") }
        }
        #expect(elapsed < .seconds(2), "the largest head index took \(elapsed)")
    }

    // MARK: Non-finite inputs

    @Test("NaN and infinities are found with their position, in every dtype", arguments: DType.allCases)
    func nonFinite(_ dtype: DType) throws {
        for (flat, value) in [(0, Float.nan), (37, Float.infinity), (2 * 5 * 8 - 1, -Float.infinity)] {
            var values = (0..<(2 * 5 * 8)).map { Float($0) / 10 }
            values[flat] = value
            let tensor = try Tensor(shape: [2, 5, 8], dtype: dtype, values: values)
            let index = [flat / 40, (flat / 8) % 5, flat % 8]
            #expect(tensor.firstNonFinite() == index)
            do {
                try tensor.checkFinite(name: "k")
                Issue.record("\(dtype): \(value) at \(index) was not found")
            } catch let AttentionError.nonFinite(name, at, found) {
                #expect(name == "k" && at == index && (found.isNaN ? value.isNaN : found == value), "\(name) \(at) \(found)")
            }
        }
        // Largest finite values are finite.
        let big = try Tensor(shape: [2], dtype: dtype, values: dtype == .f16 ? [65504, -65504] : [3e38, -3e38])
        #expect(big.firstNonFinite() == nil)
    }

    @Test("The engine refuses non-finite inputs by default, and runs them when asked")
    func engineChecksFinite() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 9, keyLength: 9, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: 4)
        var values = inputs.v.floats()
        values[5 * 64 + 7] = .nan
        let v = try Tensor(shape: inputs.v.shape, dtype: .f32, values: values)
        for run in [{ _ = try engine.dense(q: inputs.q, k: inputs.k, v: v) },
                    { _ = try engine.run(q: inputs.q, k: inputs.k, v: v, plan: .uniform(.aShape(sink: 1, window: 4), heads: 2)) }] {
            do {
                try run()
                Issue.record("a NaN input was accepted")
            } catch let AttentionError.nonFinite(tensor, index, value) {
                #expect(tensor == "v" && index == [0, 0, 5, 7] && value.isNaN)
            }
        }
        let unchecked = try engine.dense(q: inputs.q, k: inputs.k, v: v, checkFinite: false)
        #expect(unchecked.output.elementCount == problem.queryShape.reduce(1, *))
    }

    // MARK: The device refusing

    @Test("A buffer over the device's allocation limit, and a negative size")
    func allocationLimit() throws {
        let context = try TestDevice.engine().context
        let limit = context.maxAllocation
        #expect(throws: DeviceMemoryError.overAllocationLimit(label: "huge", bytes: limit + 1, limit: limit, device: context.device.info.name,
                                                             limitName: context.allocationLimitName)) {
            try DeviceBuffer(context: context, byteCount: limit + 1, label: "huge")
        }
        #expect(throws: DeviceMemoryError.negativeSize(label: "negative", bytes: -1)) {
            try DeviceBuffer(context: context, byteCount: -1, label: "negative")
        }
        #expect(throws: DeviceMemoryError.self) { try DeviceBuffer(context: context, byteCount: Int.max, label: "everything") }
        #expect(throws: AttentionError.shape("t of shape [4611686018427387904, 3] cannot be allocated: negative or too large to address")) {
            try DeviceTensor(context: context, shape: [1 << 62, 3], dtype: .f16, label: "t")
        }
        #expect(throws: AttentionError.shape("t of shape [2, -3] cannot be allocated: negative or too large to address")) {
            try DeviceTensor(context: context, shape: [2, -3], dtype: .f32, label: "t")
        }
    }

    @Test("A request over the device's memory is refused before anything is allocated or launched")
    func wholeRequestOverMemory() throws {
        let device = try TestDevice.engine().context.device
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: 300, keyLength: 300, headDim: 64, inputDType: .f32)
        let plan = LayerPlan(heads: [.dense, .aShape(sink: 4, window: 64), .verticalSlash(vertical: 100, slash: 200), .blockSparse(blocks: 2)])
        let options = SparseOptions(denseFallback: .never, estimation: .fused)
        let memory = DeviceMemoryPlan(problem: problem, plan: plan, options: options, device: device.info)
        #expect(memory.peakBytes > memory.largestBytes && memory.largestBytes > 0)
        // Every buffer fits the limit, the whole request does not.
        let context = try ComputeContext(device: device, diskCache: nil, memoryLimit: memory.peakBytes - 1)
        let engine = AttentionEngine(context: context)
        let inputs = try RandomInputs(problem: problem, seed: 9)
        #expect(throws: DeviceMemoryError.overDeviceMemory(what: "\(problem) (q, k, v, output and scratch)", bytes: memory.peakBytes,
                                                          available: memory.peakBytes - 1, device: device.info.name, limitName: "the memory limit")) {
            try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options)
        }
        // The largest buffer over the limit.
        let small = try ComputeContext(device: device, diskCache: nil, memoryLimit: memory.largestBytes - 1)
        #expect(throws: DeviceMemoryError.overAllocationLimit(label: memory.largestLabel, bytes: memory.largestBytes, limit: memory.largestBytes - 1,
                                                             device: device.info.name, limitName: "the memory limit")) {
            try AttentionEngine(context: small).run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options)
        }
        #expect(context.launchCounts.isEmpty && small.launchCounts.isEmpty, "kernels ran: \(context.launchCounts) \(small.launchCounts)")
        #expect(context.allocationCount == 0 && small.allocationCount == 0, "buffers were allocated before the refusal")
        // With room for exactly the peak, it runs.
        let exact = try ComputeContext(device: device, memoryLimit: memory.peakBytes)
        _ = try AttentionEngine(context: exact).run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options)
        #expect(!exact.launchCounts.isEmpty && exact.allocationCount > 4)
    }

    @Test("A long-context request over the device's own memory")
    func longContextOverDeviceMemory() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 64, headsKV: 8, queryLength: 1 << 22, keyLength: 1 << 22, headDim: 128, inputDType: .f16)
        #expect(throws: DeviceMemoryError.self) {
            try engine.checkDeviceMemory(problem: problem, plan: .uniform(.verticalSlash(vertical: 1000, slash: 6096), heads: 64))
        }
    }

    @Test("Memory limits from the environment: bytes and K/M/G/T suffixes; anything else is refused")
    func memoryLimitParsing() throws {
        #expect(try ComputeContext.memoryLimit(environment: [:]) == nil)
        #expect(try ComputeContext.memoryLimit(environment: ["MINFERENCECL_MEMORY_LIMIT": " "]) == nil)
        #expect(try ComputeContext.memoryLimit(environment: ["MINFERENCECL_MEMORY_LIMIT": "4096"]) == 4096)
        #expect(try ComputeContext.memoryLimit(environment: ["MINFERENCECL_MEMORY_LIMIT": "20k"]) == 20 << 10)
        #expect(try ComputeContext.memoryLimit(environment: ["MINFERENCECL_MEMORY_LIMIT": "3G"]) == 3 << 30)
        for bad in ["lots", "-5", "0", "12Q", "K", "99999999999999T"] {
            #expect(throws: AttentionError.self, "\(bad)") { try ComputeContext.memoryLimit(environment: ["MINFERENCECL_MEMORY_LIMIT": bad]) }
        }
        let device = try TestDevice.engine().context.device
        #expect(throws: AttentionError.invalidArgument("memory limit -1: must be a positive number of bytes")) {
            try ComputeContext(device: device, diskCache: nil, memoryLimit: -1)
        }
    }

    @Test("A kernel that does not build: ProgramBuildError with the compiler's log")
    func buildFailure() throws {
        let context = try TestDevice.engine().context
        let source = KernelSource(file: "broken.cl", text: "__kernel void broken(__global float* x) { x[0] = undeclared_name; }\n")
        do {
            _ = try context.program(source, options: BuildOptions(defines: ["HEAD_DIM": "64"]))
            Issue.record("a broken kernel built")
        } catch let error as ProgramBuildError {
            #expect(error.file == "broken.cl" && error.status == "CL_BUILD_PROGRAM_FAILURE" && error.options == "-DHEAD_DIM=64")
            #expect(error.log.contains("undeclared_name"), "log: \(error.log)")
            #expect(error.description.hasPrefix("building broken.cl for \(context.device.info.name) failed with CL_BUILD_PROGRAM_FAILURE"))
        }
        // Invalid defines reach the compiler and fail the same way.
        do {
            _ = try context.program(KernelSource.named("dense_attention.cl"), options: BuildOptions(defines: ["HEAD_DIM": "12"]))
            Issue.record("HEAD_DIM=12 built")
        } catch let error as ProgramBuildError {
            #expect(error.log.contains("HEAD_DIM must be a multiple of 8"), "log: \(error.log)")
        }
    }

    @Test("An unknown device or kernel file")
    func unknownDeviceAndKernel() throws {
        let devices = try ComputeDevice.all()
        #expect(throws: DeviceSelectionError.self) { try DeviceSelector("no-such-device").select(from: devices) }
        #expect(throws: DeviceSelectionError.self) { try DeviceSelector("99").select(from: devices) }
        #expect(throws: DeviceSelectionError.self) { try DeviceSelector("7:3").select(from: devices) }
        #expect((try? DeviceSelector("no-such-device").select(from: devices)) == nil)
        let error = try #require(throws: DeviceSelectionError.self) { try DeviceSelector("no-such-device").select(from: devices) }
        #expect(error.description.hasPrefix("no OpenCL device matches 'no-such-device'"))
        #expect(throws: KernelSourceError.self) { try KernelSource.raw("no_such_kernel.cl", directory: nil) }
    }
}

/// bfloat16 as ml_dtypes saves it: void words (`<V2`, `V2`) in bf16 mode, or the type's own name.
@Suite("bfloat16 .npy files")
struct NPYFileBF16Tests {
    static let wordsHint = "16-bit words (ml_dtypes saves bfloat16 so) are read as bfloat16 only in bf16 mode: pass --bf16 (library: bf16: true)"

    /// The words of 1, -2, 0.5 and 3 in bfloat16.
    static let words: [UInt16] = [0x3F80, 0xC000, 0x3F00, 0x4040]

    static func file(descr: String) -> [UInt8] {
        CommandLineTests.npy(header: CommandLineTests.shapeHeader(descr, [2, 2]),
                             data: words.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] })
    }

    @Test(arguments: ["<V2", "V2", "|V2", "<u2"])
    func voidWordsInBF16Mode(_ descr: String) throws {
        let tensor = try NPYFile.decode(Self.file(descr: descr), path: "t.npy", bf16: true)
        #expect(tensor.dtype == .bf16 && tensor.shape == [2, 2])
        #expect(tensor.floats() == [1, -2, 0.5, 3])
    }

    @Test(arguments: ["bfloat16", "<bfloat16"])
    func bfloat16ByName(_ descr: String) throws {
        for bf16 in [false, true] {
            let tensor = try NPYFile.decode(Self.file(descr: descr), path: "t.npy", bf16: bf16)
            #expect(tensor.dtype == .bf16 && tensor.floats() == [1, -2, 0.5, 3])
        }
    }
}

/// Public initializers and buffer transfers refuse what does not fit with an error, never a trap,
/// and every public error says its one-line message through `LocalizedError`.
@Suite("Errors instead of traps")
struct ErrorsInsteadOfTrapsTests {
    @Test func tensorsThatDoNotFit() throws {
        #expect(throws: AttentionError.shape("3 bytes do not hold shape [2] of f16 (2 elements)")) {
            try Tensor(shape: [2], dtype: .f16, bytes: [0, 0, 0])
        }
        #expect(throws: AttentionError.shape("negative dimension -2 in shape [3, -2]")) { try Tensor(shape: [3, -2], dtype: .f32, bytes: []) }
        #expect(throws: AttentionError.shape("shape [4611686018427387904, 4] has more elements than an Int counts")) {
            try Tensor(shape: [1 << 62, 4], dtype: .f32, bytes: [])
        }
        #expect(throws: AttentionError.shape("3 values do not fill shape [2, 2]")) { try Tensor(shape: [2, 2], dtype: .f32, values: [1, 2, 3]) }
        let t = try Tensor(shape: [2, 3], dtype: .bf16, values: [1, 2, 3, 4, 5, 6])
        #expect(throws: AttentionError.shape("cannot reshape [2, 3] (6 elements) to [4, 2]")) { try t.reshaped([4, 2]) }
        #expect(try t.reshaped([3, 2]).floats() == [1, 2, 3, 4, 5, 6])
        #expect(throws: AttentionError.shape("1 values do not fill shape [2]")) {
            try NPYFile.write(int32: [1], shape: [2], to: "/nonexistent/never-written.npy")
        }
    }

    @Test func bufferRangesOutsideTheBuffer() throws {
        let context = try TestDevice.engine().context
        let buffer = try DeviceBuffer(context: context, byteCount: 64)
        let bytes = [UInt8](repeating: 7, count: 16)
        try bytes.withUnsafeBytes { try buffer.write($0, offset: 48) }
        #expect(throws: AttentionError.invalidArgument("write of 16 bytes at offset 56 outside a device buffer of 64 bytes")) {
            try bytes.withUnsafeBytes { try buffer.write($0, offset: 56) }
        }
        #expect(throws: AttentionError.invalidArgument("write of 16 bytes at offset -1 outside a device buffer of 64 bytes")) {
            try bytes.withUnsafeBytes { try buffer.write($0, offset: -1) }
        }
        var out = [UInt8](repeating: 0, count: 80)
        #expect(throws: AttentionError.invalidArgument("read of 80 bytes at offset 0 outside a device buffer of 64 bytes")) {
            try out.withUnsafeMutableBytes { try buffer.read(into: $0) }
        }
        try out.withUnsafeMutableBytes { try buffer.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<16]), offset: 48) }
        #expect(Array(out.prefix(16)) == bytes)
    }

    @Test func errorsAreLocalized() {
        let errors: [any Error] = [
            AttentionError.budget("a-shape sink must be > 0, got 0"),
            TensorFileError.fortranOrder(path: "t.npy"),
            ProgramBuildError(file: "f.cl", options: "-DX=1", device: "dev", status: "CL_BUILD_PROGRAM_FAILURE", log: "line 1: error"),
        ]
        for error in errors {
            let message = error.localizedDescription
            #expect(!message.isEmpty && !message.contains("\n") && message == "\(error)".split(separator: "\n").first.map(String.init),
                    "\(message)")
        }
        #expect((errors[2] as? LocalizedError)?.failureReason?.contains("line 1: error") == true)
    }
}
