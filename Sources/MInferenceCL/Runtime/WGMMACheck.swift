import FoundationEssentials
import Logging

/// Whether a context runs the Hopper wgmma path (`KernelConfig.Path.nvidiaWGMMA`), decided once
/// per context by `ComputeContext.wgmma`.
public enum WGMMAStatus: Sendable, Equatable, CustomStringConvertible {
    /// The sm_90a build works and the check kernel matched the CPU bit for bit.
    case available
    /// Not an NVIDIA device of compute capability 9.0, turned off, or the check failed: why.
    case unavailable(String)

    /// Whether the status is ``available``.
    public var isAvailable: Bool { self == .available }

    /// `wgmma available`, or `wgmma unavailable:` and why.
    public var description: String {
        switch self {
        case .available: "wgmma available"
        case .unavailable(let why): "wgmma unavailable: \(why)"
        }
    }
}

/// The check behind `ComputeContext.wgmma`: build `wgmma_probe.cl` for sm_90a in two stages and
/// run it once in a context of its own (a fault there cannot spoil the caller's queue), comparing
/// S = Q K^T and O = S V of one 64-row block at head dim 128 with a CPU product, exactly (the inputs
/// are small integers). The kernel uses the attention kernels' own instruction forms, descriptors
/// and swizzled layouts, so a pass means the layouts the wgmma path depends on hold on this driver.
enum WGMMACheck {
    /// `MINFERENCECL_WGMMA=off` turns the wgmma path off (the mma.sync path runs instead).
    static let variable = "MINFERENCECL_WGMMA"

    static func run(device: ComputeDevice, diskCache: DiskProgramCache?, logger: Logger,
                    environment: [String: String] = ProcessInfo.processInfo.environment) -> WGMMAStatus {
        let info = device.info
        guard info.isNVIDIA, let cc = info.nvidiaComputeCapability, cc.major == 9, cc.minor == 0 else {
            return .unavailable("needs an NVIDIA device of compute capability 9.0")
        }
        if let setting = environment[variable]?.lowercased(), ["off", "0", "no", "false"].contains(setting) {
            return .unavailable("\(variable)=\(setting)")
        }
        do {
            let context = try ComputeContext(device: device, diskCache: diskCache, logger: logger, wgmmaCheck: false)
            return try compare(context: context)
        } catch {
            return .unavailable("\(error)")
        }
    }

    static let rows = 64, keys = 64, headDim = 128

    private static func compare(context: ComputeContext) throws -> WGMMAStatus {
        var random = SeededRandom(seed: 90)
        // Integers in -2...2: every product and sum below is exact in f16 (S) and f32 (S, O).
        let values: [(Float, UInt16)] = [(-2, 0xC000), (-1, 0xBC00), (0, 0x0000), (1, 0x3C00), (2, 0x4000)]
        func matrix(_ count: Int) -> [(Float, UInt16)] { (0..<count).map { _ in values[Int(random.next() % 5)] } }
        let q = matrix(rows * headDim), k = matrix(keys * headDim), v = matrix(keys * headDim)
        let program = try context.program(KernelSource.named("wgmma_probe.cl"),
                                          options: BuildOptions(defines: ["NV_WGMMA": "1"], sm90a: Sm90aBuild()))
        let qBuffer = try DeviceBuffer(context: context, copying: q.map(\.1), label: "wgmma check q")
        let kBuffer = try DeviceBuffer(context: context, copying: k.map(\.1), label: "wgmma check k")
        let vBuffer = try DeviceBuffer(context: context, copying: v.map(\.1), label: "wgmma check v")
        let sBuffer = try DeviceBuffer(context: context, byteCount: rows * keys * 4, label: "wgmma check S")
        let oBuffer = try DeviceBuffer(context: context, byteCount: rows * headDim * 4, label: "wgmma check O")
        try sBuffer.fill(pattern: 0x7FC0_0000)
        try oBuffer.fill(pattern: 0x7FC0_0000)
        try context.launch(program, "wgmma_probe", global: [128], local: [128],
                           [.buffer(qBuffer), .buffer(kBuffer), .buffer(vBuffer), .buffer(sBuffer), .buffer(oBuffer)])
        let s = try sBuffer.read(as: Float.self, count: rows * keys)
        let o = try oBuffer.read(as: Float.self, count: rows * headDim)

        var expectedS = [Float](repeating: 0, count: rows * keys)
        for i in 0..<rows {
            for j in 0..<keys {
                var sum: Float = 0
                for d in 0..<headDim { sum += q[i * headDim + d].0 * k[j * headDim + d].0 }
                expectedS[i * keys + j] = sum
            }
        }
        var expectedO = [Float](repeating: 0, count: rows * headDim)
        for i in 0..<rows {
            for c in 0..<headDim {
                var sum: Float = 0
                for j in 0..<keys { sum += expectedS[i * keys + j] * v[j * headDim + c].0 }
                expectedO[i * headDim + c] = sum
            }
        }
        for (name, got, want, width) in [("S = Q K^T", s, expectedS, keys), ("O = S V", o, expectedO, headDim)] {
            let wrong = got.indices.filter { got[$0] != want[$0] }
            if let first = wrong.first {
                return .unavailable("the check kernel's \(name) differs from the CPU in \(wrong.count) of \(got.count) values; "
                    + "first at row \(first / width), column \(first % width): \(got[first]) instead of \(want[first])")
            }
        }
        return .available
    }
}
