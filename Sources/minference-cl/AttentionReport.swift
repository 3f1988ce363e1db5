import MInferenceCL

/// The summary an attention run prints: device, shape, and per pattern kind the heads, the
/// density its kernels covered, and the device time of estimation, index building and kernel.
struct AttentionReport {
    let device: ComputeDevice
    let report: LayerResult

    func render() -> String {
        let p = report.problem
        var lines = [
            "device: \(device.info.name) (\(device.info.platformName), driver \(device.info.driverVersion))",
            "shape: B=\(p.batch) Hq=\(p.headsQ) Hkv=\(p.headsKV) Nq=\(p.queryLength) Nk=\(p.keyLength) d=\(p.headDim) \(p.inputDType)->\(p.outputDType) \(p.causal ? "causal" : "non-causal") scale=\(p.scale)",
            "plan: \(report.plan)",
        ]
        let fallbacks = zip(report.plan.heads, report.executed).filter { $0.0.kind != $0.1.kind }.map(\.0)
        if !fallbacks.isEmpty {
            // why: a decode step, FlexPrefill's short-sequence rule, or the device profile's length
            let reason = p.queryLength == 1 && p.keyLength > 1 ? "a single query (a decode step) runs dense"
                : fallbacks.allSatisfy({ $0.kind == .flexPrefill })
                    ? "FlexPrefill runs dense up to max(2 blocks, the minimum budget) keys, as upstream"
                    : "below the device's measured length (\(report.profile))"
            lines.append("dense fallback: \(fallbacks.count) head(s): \(reason)")
        }
        var rows: [[String]] = []
        for kind in HeadPattern.Kind.allCases {
            guard let timing = report.timing[kind] else { continue }
            let heads = report.executed.filter { $0.kind == kind }.count
            let total = timing.totalMilliseconds
            let pairs = report.executed.indices.filter { report.executed[$0].kind == kind }.map { Double(report.coveredPairs[$0]) }.reduce(0, +)
            let flops = 4 * Double(p.headDim) * (kind == .dense && !p.causal ? Double(p.queryLength * p.keyLength) * Double(heads * p.batch) : pairs)
            rows.append([kind.rawValue, "\(heads)", Format.fixed(100 * (report.density(of: kind) ?? 0), 2) + "%",
                         Format.fixed(timing.milliseconds(.estimation), 3), Format.fixed(timing.milliseconds(.indices), 3),
                         Format.fixed(timing.milliseconds(.kernel), 3), Format.fixed(total, 3),
                         Format.fixed(flops / max(total, 1e-9) / 1e6, 1)])
        }
        lines.append(Table(header: ["pattern", "heads", "density", "estimate ms", "indices ms", "kernel ms", "total ms", "GFLOP/s"], rows: rows).render())
        return lines.joined(separator: "\n")
    }
}
