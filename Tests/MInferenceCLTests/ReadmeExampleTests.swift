import Foundation
import MInferenceCL
import Testing

// The README's usage example, verbatim between the markers (a test below keeps them equal).
// README-EXAMPLE-BEGIN
/// Runs one layer of attention with MInference's per-head patterns from its JSON config and
/// writes the output; q is [Hq, N, d], k and v are [Hkv, N, d] (.npy, fp16/bf16/fp32).
func sparseAttention(q qPath: String, k kPath: String, v vPath: String,
                     config configPath: String, layer: Int, out outPath: String) throws -> LayerResult {
    let context = try ComputeContext()  // MINFERENCECL_DEVICE, else the first GPU, else the CPU (PoCL)
    let engine = AttentionEngine(context: context)
    let q = try NPYFile.read(qPath), k = try NPYFile.read(kPath), v = try NPYFile.read(vPath)
    let patterns = try PatternConfig.load(path: configPath).patterns(layer: layer, heads: q.shape[0])
    let (output, report) = try engine.run(q: q, k: k, v: v, plan: LayerPlan(heads: patterns))
    try NPYFile.write(output, to: outPath)
    return report  // per pattern: estimation / index / kernel time; per head: density
}
// README-EXAMPLE-END

@Suite("README example")
struct ReadmeExampleTests {
    @Test("The example runs on real data with a config")
    func exampleRuns() throws {
        let folder = fixturePath("smollm2-layer03-n300")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("readme-example-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let heads: [HeadPattern] = [.verticalSlash(vertical: 30, slash: 60), .aShape(sink: 4, window: 64), .blockSparse(blocks: 100)]
        let config = PatternConfig(layers: [(0..<9).map { heads[$0 % 3] }])
        try config.write(to: directory + "/config.json")
        let report = try sparseAttention(q: folder + "/q.npy", k: folder + "/k.npy", v: folder + "/v.npy",
                                         config: directory + "/config.json", layer: 0, out: directory + "/out.npy")
        let output = try NPYFile.read(directory + "/out.npy")
        #expect(output.shape == [9, 300, 64])
        let finite = output.floats().allSatisfy { $0.isFinite }
        #expect(finite)
        #expect(report.executed.count == 9)
        #expect((0..<9).allSatisfy { report.density(head: $0) > 0 && report.density(head: $0) <= 1 })
    }

    @Test("README.md shows exactly the code this file compiles")
    func readmeMatches() throws {
        let file = Self.sourceFile()
        let here = try String(contentsOfFile: file, encoding: .utf8)
        let root = String(file[..<file.range(of: "/Tests/")!.lowerBound])
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let begin = here.range(of: "// README-EXAMPLE-BEGIN\n")!.upperBound
        let end = here.range(of: "// README-EXAMPLE-END")!.lowerBound
        let code = String(here[begin..<end])
        #expect(readme.contains("```swift\nimport MInferenceCL\n\n" + code + "```"), "README.md's Swift example differs from ReadmeExampleTests.swift")
    }

    static func sourceFile(_ file: String = #filePath) -> String { file }
}
