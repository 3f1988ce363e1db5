import MInferenceCL

/// Medians of repeated device timings: `warmup` untimed runs, then `repeats` timed ones.
struct Measurement {
    var warmup: Int
    var repeats: Int

    /// Median phase times of `body` (each call returns its own profiled timing): `total` is the
    /// median span (first command's start to last command's end, gaps included: how the baselines'
    /// CUDA events time a call), `commands` the median sum of the commands' own durations.
    func median(_ body: () throws -> PhaseTiming) throws
        -> (total: Double, commands: Double, phases: [PhaseTiming.Phase: Double], spread: Double) {
        for _ in 0..<warmup { _ = try body() }
        var runs: [PhaseTiming] = []
        for _ in 0..<max(1, repeats) { runs.append(try body()) }
        func median(_ values: [Double]) -> Double {
            let s = values.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        let totals = runs.map(\.spanMilliseconds)
        var phases: [PhaseTiming.Phase: Double] = [:]
        for phase in PhaseTiming.Phase.allCases { phases[phase] = median(runs.map { $0.milliseconds(phase) }) }
        let spread = (totals.max()! - totals.min()!) / max(median(totals), 1e-9)
        return (median(totals), median(runs.map(\.totalMilliseconds)), phases, spread)
    }
}
