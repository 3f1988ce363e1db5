import FoundationEssentials
import MInferenceCL

/// `Benchmarks/results/<device-slug>.json`: one object per benchmark call.
struct ResultsFile: Codable {
    var device: String
    var driver: String
    var commit: String
    var date: String
    var command: String
    var path: String
    var runs: [Run]

    struct Run: Codable {
        var name: String
        var pattern: String
        var N: Int
        var Hq: Int
        var Hkv: Int
        var d: Int
        var dtype: String
        var causal: Bool
        var ms: Double
        var tflops: Double
        var density: Double
        var baseline: String?
        var baseline_ms: Double?
        var speedup: Double?
        // Beyond the required fields:
        var input: String
        var phases: [String: Double]
        var spread: Double
        var per_head: Bool
        var ms_x32: Double?
        var other_baselines: [String: Double]
        var speedup_vs_dense: Double?
        /// Sum of the commands' own device times (`ms` is the span, gaps included).
        var ms_commands: Double
        /// The tile path the kernels took (`nvidia-wgmma`, `nvidia-mma`, `portable`).
        var path: String

        /// The required baseline fields are written as null when a run has no baseline (the
        /// synthesized encoding would drop them); the optional extras are left out then.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(pattern, forKey: .pattern)
            try c.encode(N, forKey: .N)
            try c.encode(Hq, forKey: .Hq)
            try c.encode(Hkv, forKey: .Hkv)
            try c.encode(d, forKey: .d)
            try c.encode(dtype, forKey: .dtype)
            try c.encode(causal, forKey: .causal)
            try c.encode(ms, forKey: .ms)
            try c.encode(tflops, forKey: .tflops)
            try c.encode(density, forKey: .density)
            try c.encode(baseline, forKey: .baseline)
            try c.encode(baseline_ms, forKey: .baseline_ms)
            try c.encode(speedup, forKey: .speedup)
            try c.encode(input, forKey: .input)
            try c.encode(phases, forKey: .phases)
            try c.encode(spread, forKey: .spread)
            try c.encode(per_head, forKey: .per_head)
            try c.encodeIfPresent(ms_x32, forKey: .ms_x32)
            try c.encode(other_baselines, forKey: .other_baselines)
            try c.encodeIfPresent(speedup_vs_dense, forKey: .speedup_vs_dense)
            try c.encode(ms_commands, forKey: .ms_commands)
            try c.encode(path, forKey: .path)
        }
    }

    static func slug(_ name: String) -> String {
        var out = ""
        for c in name.lowercased() { out.append(c.isLetter || c.isNumber ? c : "-") }
        while out.contains("--") { out = out.split(separator: "-", omittingEmptySubsequences: true).joined(separator: "-") }
        return out.trimmingCharacters(in: "-")
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        try BenchEnvironment.write(String(decoding: data, as: UTF8.self) + "\n", to: path)
    }
}

/// Rows of the PyTorch/MInference baseline script (Benchmarks/baselines/baseline.py), matched
/// to our runs by pattern, length and head count.
struct BaselineRuns {
    struct Row: Decodable {
        var name: String
        var pattern: String
        var N: Int
        var Hq: Int
        var ms: Double?
        var status: String?
    }

    struct File: Decodable { var runs: [Row] }

    var rows: [Row]

    init(path: String?) throws {
        guard let path else { rows = []; return }
        rows = try JSONDecoder().decode(File.self, from: Data(BenchEnvironment.read(path))).runs.filter { $0.ms != nil }
    }

    /// Baselines of one of our runs: dense against SDPA (FLASH first, then cuDNN), a sparse pattern
    /// against MInference's own pipeline for it.
    func matches(kind: HeadPattern.Kind, n: Int, heads: Int) -> [(name: String, ms: Double)] {
        let same = rows.filter { $0.N == n && $0.Hq == heads }
        if kind == .dense {
            return ["sdpa_flash", "sdpa_cudnn"].compactMap { name in
                same.first { $0.name.lowercased().hasPrefix(name) }.map { ($0.name, $0.ms!) }
            }
        }
        return same.filter { !$0.name.lowercased().hasPrefix("sdpa") && HeadPattern.Kind(name: $0.pattern) == kind }
            .map { ($0.name, $0.ms!) }
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
