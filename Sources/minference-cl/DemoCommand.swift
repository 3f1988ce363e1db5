import ArgumentParser
import MInferenceCL

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run attention on a long-context-like input on the default device and check it against a float64 reference.")

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(name: .long, parsing: .upToNextOption, help: "Sequence lengths (default: 1024 4096 on a CPU device, 4096 16384 65536 on a GPU).")
    var lengths: [Int] = []
    @Option(name: .long, help: "Query heads.")
    var heads: Int = 8
    @Option(name: .long, help: "KV heads.")
    var kvHeads: Int = 2
    @Option(name: .long, help: "Head dim.")
    var headDim: Int = 128
    @Option(name: .long, help: "Input dtype: f16, bf16 or f32.")
    var dtype: String = "f16"
    @Option(name: .long, help: "Query rows checked against the float64 reference per length.")
    var checkRows: Int = 48
    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 1

    func run() throws {
        try reportingErrors {
            guard let dtype = DType(name: dtype) else { throw ValidationError("unknown --dtype '\(self.dtype)'") }
            let context = try deviceOptions.openContext()
            let info = context.device.info
            let lengths = self.lengths.isEmpty ? (info.kind == .gpu ? [4096, 16384, 65536] : [1024, 4096]) : self.lengths
            print("device: \(info.name) (\(info.platformName), driver \(info.driverVersion))")
            print("input: long-context-like synthetic q/k/v (sink and strong key columns, local and periodic diagonals), Hq=\(heads) Hkv=\(kvHeads) d=\(headDim) \(dtype) causal")
            let demo = Demo(context: context, headsQ: heads, headsKV: kvHeads, headDim: headDim, dtype: dtype,
                            checkRows: checkRows, seed: seed)
            var rows: [[String]] = []
            for n in lengths {
                Terminal.progress("running N=\(n)...")
                let row = try demo.run(length: n) { Terminal.progress("N=\(n): \($0)") }
                rows.append(row)
            }
            Terminal.progress("done", done: true)
            print(Table(header: Demo.header, rows: rows).render())
        }
    }
}
