import Foundation
@testable import MInferenceCL
@testable import MInferenceCLModel
import Testing

/// `minference-cl demo` without the model or its config: clear errors, no crash; the demo's two
/// jobs refuse each other's options.
@Suite("minference-cl demo: errors")
struct ModelDemoErrorTests {
    @Test("A missing model is an error that says how to fetch it")
    func missingModel() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let result = try runProcess(tool, ["demo"], environment: ["MINFERENCECL_MODEL_GGUF": "/nonexistent/model.gguf"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderrLines == ["minference-cl: error: no model at /nonexistent/model.gguf: \(DefaultModel.fetchHint)"], "\(result)")
    }

    @Test("Each job refuses the other's options")
    func optionsOfTheOtherJob() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        for (arguments, message) in [(["demo", "--heads", "4"], "--heads applies to demo --kernels"),
                                     (["demo", "--kernels", "--length", "512"], "--length applies to the model demo, not --kernels"),
                                     (["demo", "--kernels", "--config", "c.json"], "--config applies to the model demo, not --kernels")] {
            let result = try runProcess(tool, arguments)
            #expect(result.status != 0 && result.stderrLines == ["minference-cl: error: \(message)"], "\(arguments): \(result)")
        }
    }

    @Test("A missing config names the default's folder")
    func missingConfig() throws {
        guard RealModel.isPresent else { return }
        let folder = try TemporaryFolder("cli-demo-config")
        defer { folder.remove() }
        let result = try runProcess(try BuiltExecutable.path("minference-cl"), ["demo"], directory: folder.path)
        #expect(result.status == 1 && result.stderr.contains("no config at Configs/"), "\(result)")
    }
}

/// `minference-cl demo` (the model job) on the real model, short, and the passkey prompts it and
/// `eval` build.
@Suite("minference-cl demo on the real SmolLM2-135M",
       .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct ModelDemoTests {
    /// The repository root, where the default config's relative path holds.
    static let root = fixturePath("../../..")

    @Test("demo: time to first token split, agreement and KL, passkey for both sides")
    func demoPrintsItsMeasures() throws {
        let result = try runProcess(try BuiltExecutable.path("minference-cl"), ["demo", "--length", "200", "--chunk", "96"],
                                    directory: Self.root, timeout: 600)
        #expect(result.status == 0, "\(result)")
        let out = result.stdout
        for line in ["time to first token ms", "its attention ms (device time)", "its rest ms", "passkey ",
                     "next-token predictions over the 192 prompt positions: top-1 agreement",
                     "text: the licence texts of /usr/share/common-licenses", "config: Configs/"] {
            #expect(out.contains(line), "\(line): \(out)")
        }
        let passkey = try #require(out.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("passkey ") })
        #expect(passkey.contains("found") && !passkey.contains("n/a"), "\(passkey)")
    }

    @Test("Passkey prompts: length − 8 tokens, the needle at the depth or after the line break before it, the key found in its own words")
    func passkeyPrompts() throws {
        let tokenizer = try RealModel.tokenizer.get()
        let passkey = Passkey(key: 48_213)
        let needle = tokenizer.encode(passkey.needle), intro = tokenizer.encode(Passkey.intro)
        func needleStart(_ prompt: [Int32]) -> Int? {
            (0...(prompt.count - needle.count)).first { Array(prompt[$0..<($0 + needle.count)]) == needle }
        }
        // A filler without line breaks: exactly at the depth.
        let filler = tokenizer.encode(" The grass is green. The sky is blue.")
        let prompt = passkey.prompt(haystack: filler, length: 300, depth: 0.5, tokenizer: tokenizer)
        let room = 300 - Passkey.answerTokens - intro.count - needle.count - tokenizer.encode(Passkey.question).count
        #expect(prompt.count == 300 - Passkey.answerTokens && needleStart(prompt) == intro.count + room / 2)
        // Lines: right after a line break.
        let lines = tokenizer.encode(String(repeating: "A short line of text here.\n", count: 20))
        let broken = passkey.prompt(haystack: lines, length: 300, depth: 0.5, tokenizer: tokenizer)
        let at = try #require(needleStart(broken))
        #expect(try tokenizer.decode([broken[at - 1]]).hasSuffix("\n") && abs(at - (intro.count + room / 2)) <= 64)
        #expect(try passkey.isFound(in: tokenizer.encode(" 48213. Remember"), tokenizer: tokenizer))
        #expect(try !passkey.isFound(in: tokenizer.encode(" 48312."), tokenizer: tokenizer))
        // No room for a haystack: intro, needle and question only.
        #expect(passkey.prompt(haystack: filler, length: 10, depth: 0.5, tokenizer: tokenizer).count == intro.count + needle.count
                + tokenizer.encode(Passkey.question).count)
    }
}
