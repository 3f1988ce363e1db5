import ArgumentParser
import MInferenceCL

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Dense and sparse attention on a long-context-like input on the default device, checked against a float64 reference.",
        discussion: """
        Per length: dense attention, then each sparse pattern with its time, its speedup over dense in the same run and \
        the share of the causal attention its kernel computed (density). Three numbers, kept apart: "kernel vs float64 \
        (its keys)" is the kernel's relative L2 error against a float64 reference over exactly the keys its pattern \
        covers, on sampled rows; "check" judges that number alone against the dtype's tolerance. "recall" is the share \
        of the dense softmax mass those keys hold (1 = nothing lost). "vs dense (approximation)" is the pattern's \
        distance from dense attention: what the pattern gives up, not an error of the kernel, and no check judges it.
        """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(name: .long, parsing: .upToNextOption, help: "Sequence lengths (default: 2048 4096 on a CPU device, 8192 32768 131072 on a GPU).")
    var lengths: [Int] = []
    @Option(name: .long, parsing: .unconditional, help: "Query heads.")
    var heads: Int = 8
    @Option(name: .long, parsing: .unconditional, help: "KV heads.")
    var kvHeads: Int = 2
    @Option(name: .long, parsing: .unconditional, help: "Head dim.")
    var headDim: Int = 128
    @Option(name: .long, help: "Input dtype: f16, bf16 or f32.")
    var dtype: String = "f16"
    @Option(name: .long, parsing: .unconditional, help: "Query rows checked against the float64 reference per length.")
    var checkRows: Int = 48
    @Option(name: .long, parsing: .unconditional, help: "Random seed.")
    var seed: UInt64 = 1

    func run() throws {
        try reportingErrors {
            guard let dtype = DType(name: dtype) else { throw ValidationError("unknown --dtype '\(self.dtype)'") }
            guard checkRows >= 1 else { throw ValidationError("--check-rows must be at least 1, got \(checkRows)") }
            let context = try deviceOptions.openContext()
            let info = context.device.info
            let lengths = self.lengths.isEmpty ? (info.kind == .gpu ? [8192, 32768, 131072] : [2048, 4096]) : self.lengths
            let patterns = Demo.patterns(for: info.kind)
            print("device: \(info.name) (\(info.platformName), driver \(info.driverVersion))")
            print("input: long-context-like synthetic q/k/v (sink and strong key columns, local and periodic diagonals), Hq=\(heads) Hkv=\(kvHeads) d=\(headDim) \(dtype) causal")
            print("patterns: \(patterns.map(\.description).joined(separator: ", "))")
            let demo = Demo(context: context, headsQ: heads, headsKV: kvHeads, headDim: headDim, dtype: dtype,
                            checkRows: checkRows, seed: seed, patterns: patterns)
            var rows: [[String]] = []
            for n in lengths {
                Terminal.progress("running N=\(n)...")
                rows += try demo.run(length: n) { Terminal.progress("N=\(n): \($0)") }
            }
            Terminal.progress("done", done: true)
            print(Table(header: Demo.header, rows: rows).render())
        }
    }
}
