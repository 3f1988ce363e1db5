import Foundation
@testable import MInferenceCL
import Testing

/// `minference-cl attention` with Tri-shape, XAttention, FlexPrefill and TriangleMix: each runs
/// and reports its pattern, writes what the library computes for the same plan (outputs and
/// `--indices-out` files), and flags of another pattern are refused with one error line.
@Suite("Command line: the prefill methods")
struct PrefillMethodCommandLineTests {
    /// q [2, 200, 64], k and v [1, 200, 64], f16 (the f16 64-block programs of
    /// PrefillMethodTests): four 64-blocks, above FlexPrefill's dense length with 64-blocks (128).
    static let files: [String: [UInt8]] = [
        "q.npy": npy(shape: [2, 200, 64], seed: 1), "k.npy": npy(shape: [1, 200, 64], seed: 2), "v.npy": npy(shape: [1, 200, 64], seed: 3),
    ]

    /// A float16 .npy of seeded normal values.
    static func npy(shape: [Int], seed: UInt64) -> [UInt8] {
        var random = SeededRandom(seed: seed)
        // Values and shape match by construction.
        return NPYFile.encode(try! Tensor(shape: shape, dtype: .f16, values: random.normals(shape.reduce(1, *))))
    }

    struct Run: CustomTestStringConvertible, Sendable {
        var name: String
        var arguments: [String]
        /// The `plan:` line the run prints.
        var plan: String
        /// The pattern the library runs for every head (the plan the output is compared with).
        var pattern: HeadPattern
        var testDescription: String { name }
    }

    static let runs: [Run] = [
        Run(name: "tri-shape", arguments: ["--pattern", "tri-shape", "--sink", "4", "--window", "16", "--last", "10"],
            plan: "plan: 2x tri-shape(sink 4, window 16, last 10)", pattern: .triShape(sink: 4, window: 16, last: 10)),
        Run(name: "xattention", arguments: ["--pattern", "xattention", "--threshold", "0.8", "--stride", "8", "--block-size", "64"],
            plan: "plan: 2x xattention(threshold 0.8, stride 8, block 64)",
            pattern: .xAttention(XAttentionParameters(threshold: 0.8, stride: 8, blockSize: 64))),
        Run(name: "flexprefill", arguments: ["--pattern", "flexprefill", "--gamma", "0.9", "--tau", "0.1", "--block-size", "64"],
            plan: "plan: 2x flexprefill(gamma 0.9, tau 0.1, block 64)",
            pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1, blockSize: 64))),
        Run(name: "TriangleMix, a deep layer", arguments: ["--tri-mix-start", "2", "--layer", "3"],
            plan: "plan: 2x tri-shape(sink 8, window 512, last 128)", pattern: .triShape(sink: 8, window: 512, last: 128)),
        Run(name: "TriangleMix, a shallow layer", arguments: ["--tri-mix-start", "2", "--layer", "1"], plan: "plan: 2x dense",
            pattern: .dense),
    ]

    /// The int32 values and shape of an index file.
    static func readInt32(_ path: String) throws -> (shape: [Int], values: [Int32]) {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let length = Int(bytes[8]) | Int(bytes[9]) << 8
        let header = try NPYFile.parseHeader(String(decoding: bytes[10..<(10 + length)], as: UTF8.self), path: path)
        #expect(header.descr == "<i4" && !header.fortranOrder, "\(path): \(header)")
        let data = Array(bytes[(10 + length)...])
        let values = stride(from: 0, to: data.count, by: 4).map { i in
            Int32(bitPattern: UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24)
        }
        #expect(values.count == header.shape.reduce(1, *), "\(path)")
        return (header.shape, values)
    }

    /// One run at a time: each process builds the programs the disk cache does not hold yet, and
    /// the runs share most of them.
    @Test(.serialized, arguments: runs)
    func runsAndReportsThePattern(_ r: Run) throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("cli-prefill")
        defer { folder.remove() }
        for (name, bytes) in Self.files { _ = try folder.write(name, bytes) }
        let indices = folder.file("indices")
        let arguments = ["attention", "--q", folder.file("q.npy"), "--k", folder.file("k.npy"), "--v", folder.file("v.npy"),
                         "--out", folder.file("out.npy"), "--indices-out", indices] + r.arguments
        let result = try runProcess(tool, arguments)
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains(r.plan), "\(result)")
        // The summary table has a row for the kind that ran, and no dense fallback line.
        let kind = r.pattern.kind.rawValue
        #expect(lines.contains { $0.split(separator: " ").first.map(String.init) == kind }, "no \(kind) row: \(result)")
        #expect(!result.stdout.contains("dense fallback"), "\(result)")

        // The output is the library's for the same plan, bit for bit (same device, same kernels).
        let q = try NPYFile.read(folder.file("q.npy")), k = try NPYFile.read(folder.file("k.npy")), v = try NPYFile.read(folder.file("v.npy"))
        let (expected, report) = try TestDevice.engine().run(q: q, k: k, v: v, plan: .uniform(r.pattern, heads: 2),
                                                           options: SparseOptions(denseFallback: .never, collectIndices: true))
        let written = try NPYFile.read(folder.file("out.npy"))
        #expect(written.shape == [2, 200, 64])
        #expect(written.floats() == expected.floats(), "the command line's output differs from the library's")

        // Index files: the block lists in the method's block size, as the library reports them.
        let names = folder.contents().contains("indices") ? ((try? FileManager.default.contentsOfDirectory(atPath: indices)) ?? []).sorted() : []
        let blockLists = report.indices.xAttention + report.indices.flexPrefill.map(\.blocks)
        switch r.pattern.kind {
        case .xAttention, .flexPrefill:
            var expectedNames = ["indices.json"]
            for h in 0..<2 {
                expectedNames += ["head\(h)_block_count.npy", "head\(h)_block_pairs.npy"]
                if r.pattern.kind == .flexPrefill { expectedNames += ["head\(h)_slash_blocks.npy", "head\(h)_vertical_blocks.npy"] }
            }
            #expect(names == expectedNames.sorted())
            let manifest = try String(contentsOfFile: indices + "/indices.json", encoding: .utf8)
            #expect(manifest.contains("\"pattern\": \"\(kind)\"") && manifest.contains("\"block_size\": 64"), "\(manifest)")
            if r.pattern.kind == .flexPrefill {
                #expect(manifest.contains("\"query_aware\": ") && manifest.contains("\"js_distance\": "), "\(manifest)")
            }
            try #require(blockLists.count == 2)
            for (h, lists) in blockLists.enumerated() {
                let counts = try Self.readInt32(indices + "/head\(h)_block_count.npy")
                #expect(counts.shape == [4] && counts.values == lists.selected.map { Int32($0.count) })
                let pairs = try Self.readInt32(indices + "/head\(h)_block_pairs.npy")
                let flat = lists.selected.enumerated().flatMap { m, blocks in blocks.flatMap { [Int32(m), $0] } }
                #expect(pairs.shape == [flat.count / 2, 2] && pairs.values == flat, "head \(h)")
                // every query block keeps its diagonal and key block 0
                for (m, blocks) in lists.selected.enumerated() { #expect(blocks.contains(0) && blocks.contains(Int32(m)), "head \(h) row \(m)") }
            }
            for (h, head) in report.indices.flexPrefill.enumerated() {
                let vertical = try Self.readInt32(indices + "/head\(h)_vertical_blocks.npy")
                let slash = try Self.readInt32(indices + "/head\(h)_slash_blocks.npy")
                #expect(vertical.values == head.verticalBlocks && vertical.shape == [head.verticalBlocks.count])
                #expect(slash.values == head.slashBlocks && slash.shape == [head.slashBlocks.count])
                #expect(vertical.values.contains(0) && slash.values.contains(3), "block 0 and the main block diagonal (s = nb - 1)")
            }
        default:
            // Tri-shape and dense have no index to write: an empty manifest.
            #expect(names == ["indices.json"])
            #expect(blockLists.isEmpty)
        }
    }

    static let refusals: [CommandLineTests.Case] = [
        CommandLineTests.standard("--threshold with a-shape", ["--pattern", "a-shape", "--threshold", "0.9"],
                                  message: "--threshold does not apply to --pattern a-shape"),
        CommandLineTests.standard("--last with xattention", ["--pattern", "xattention", "--last", "10"],
                                  message: "--last does not apply to --pattern xattention"),
        CommandLineTests.standard("--gamma with xattention", ["--pattern", "xattention", "--gamma", "0.9"],
                                  message: "--gamma does not apply to --pattern xattention"),
        CommandLineTests.standard("--stride with flexprefill", ["--pattern", "flexprefill", "--stride", "8"],
                                  message: "--stride does not apply to --pattern flexprefill"),
        CommandLineTests.standard("--block-size with tri-shape", ["--pattern", "tri-shape", "--block-size", "64"],
                                  message: "--block-size does not apply to --pattern tri-shape"),
        CommandLineTests.standard("--threshold 2", ["--pattern", "xattention", "--threshold", "2"],
                                  message: "xattention threshold must be in (0, 1], got 2.0"),
        CommandLineTests.standard("--stride 3", ["--pattern", "xattention", "--stride", "3"],
                                  message: "xattention stride must divide the block size 128, got 3"),
        CommandLineTests.standard("--block-size 96", ["--pattern", "flexprefill", "--block-size", "96"],
                                  message: "flexprefill block size must be a multiple of 64 from 64 to 512, got 96"),
        CommandLineTests.standard("--tau -0.1", ["--pattern", "flexprefill", "--tau=-0.1"], message: "flexprefill tau must be in [0, 1], got -0.1"),
        CommandLineTests.standard("--min-budget 0", ["--pattern", "flexprefill", "--min-budget", "0"],
                                  message: "flexprefill min budget must be from 1 to 2147483647 tokens, got 0"),
        CommandLineTests.standard("--last -1", ["--pattern", "tri-shape", "--last", "-1"], message: "tri-shape last must be >= 0, got -1"),
        CommandLineTests.standard("--tri-mix-start with --pattern", ["--tri-mix-start", "2", "--layer", "3", "--pattern", "tri-shape"],
                                  message: "--tri-mix-start chooses each layer's pattern; use it without --pattern"),
        CommandLineTests.standard("--tri-mix-start without --layer", ["--tri-mix-start", "2"],
                                  message: "--layer is needed with --tri-mix-start"),
        CommandLineTests.standard("--tri-mix-start with a negative --layer", ["--tri-mix-start", "3", "--layer", "-1"],
                                  message: "--layer must be >= 0, got -1"),
        CommandLineTests.standard("--tri-mix-start with --threshold", ["--tri-mix-start", "2", "--layer", "3", "--threshold", "0.9"],
                                  message: "--threshold does not apply to --tri-mix-start"),
        CommandLineTests.standard("negative --tri-mix-start", ["--tri-mix-start", "-1", "--layer", "3"],
                                  message: "TriangleMix starting layer must be >= 0"),
        CommandLineTests.standard("xattention chunk off the block boundary", replacing: ["q.npy": CommandLineTests.npy(shape: [3, 20, 64])],
                                  ["--pattern", "xattention"],
                                  message: "xattention in a chunk needs the chunk to start on a block boundary (Nk - Nq = 17 is not a multiple of its block size 128)"),
    ]

    @Test(arguments: refusals)
    func refusesWithOneLine(_ c: CommandLineTests.Case) throws {
        try CommandLineTests().refusesWithOneLine(c)
    }
}
