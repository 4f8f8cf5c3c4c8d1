// One tool for lint and format: ESLint, with Prettier run as a rule.
import pulumi from "@pulumi/eslint-plugin";
import prettier from "eslint-plugin-prettier/recommended";
import tseslint from "typescript-eslint";

export default tseslint.config(
    { ignores: ["node_modules/", "coverage/", "**/*.js", "**/*.mjs"] },
    ...tseslint.configs.strictTypeChecked,
    {
        languageOptions: {
            parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
        },
        plugins: { "@pulumi": pulumi },
        rules: {
            "@pulumi/no-output-in-template-literal": "error",
            "@pulumi/no-output-instance-in-template-literal": "error",
            "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
            "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
            "prefer-const": "error",
            eqeqeq: "error",
            "no-console": ["error", { allow: ["error"] }],
        },
    },
    {
        files: ["test/**/*.ts", "sandbox/**/*.ts", "scripts/**/*.ts", "automation/**/*.ts"],
        rules: { "no-console": "off", "@typescript-eslint/no-non-null-assertion": "off" },
    },
    prettier,
);
